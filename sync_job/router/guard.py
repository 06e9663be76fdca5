"""The mass-removal guard: a run never wipes out most of what it manages in one go.

A policy is *removed* when it owns objects on the router as read but is not among the annotated
policies this run evaluated (it was deleted or un-annotated, or the source read looks empty):
the plan then deletes every object it owns. When one run would remove more than half of the
policies that own objects on the router, and at least two of them (`MIN_REMOVED`), those
removals are held back: the plan loses every change of the removed policies, the rest stays.
`--allow-mass-removal` skips the guard for one run. Pure: no I/O, no clock.

The owners are found with `Ownership.owner_policy` over every table read, whatever tables the
router stage reads, so a table added to `Table` is guarded without a change here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sync_job.router.ownership import Ownership
from sync_job.router.plan import Plan
from sync_job.router.tables import Table

# The guard holds removals back only when at least this many policies would go, so removing the
# one policy of a router that has one (or one of two) still works without the flag.
MIN_REMOVED = 2


@dataclass(frozen=True, slots=True)
class HeldBack:
    """One removed policy whose router objects this run left in place: deletes per table."""

    policy: str
    deletes: Mapping[Table, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deletes.values())


@dataclass(frozen=True, slots=True)
class Guarded:
    """The plan to run and what was held back of it (empty when the guard let it through).

    `removed` and `owners` are the counts the rule was decided on, for the message."""

    plan: Plan
    held_back: tuple[HeldBack, ...] = ()
    removed: int = 0
    owners: int = 0


def owners(tables: Mapping[Table, Sequence[Mapping[str, str]]], ownership: Ownership) -> set[str]:
    """Every policy that owns at least one object in the tables as read."""
    return {
        policy
        for table, rows in tables.items()
        for row in rows
        if (policy := ownership.owner_policy(table, row)) is not None
    }


def is_mass_removal(removed: int, owning: int) -> bool:
    """The rule: more than half of the owning policies, and at least `MIN_REMOVED` of them."""
    return removed >= MIN_REMOVED and 2 * removed > owning


def guard(
    plan: Plan,
    tables: Mapping[Table, Sequence[Mapping[str, str]]],
    ownership: Ownership,
    evaluated: Collection[str],
) -> Guarded:
    """`plan` without the removals of the removed policies when they are a mass removal.

    `evaluated` names every annotated policy of this run, failed ones included (those keep
    what they own and are never removed)."""
    owning = owners(tables, ownership)
    removed = owning - set(evaluated)
    if not is_mass_removal(len(removed), len(owning)):
        return Guarded(plan, removed=len(removed), owners=len(owning))
    held = [change for change in plan.changes if change.policy in removed]
    if not held:  # nothing of theirs is planned (no marker: nothing is planned at all)
        return Guarded(plan, removed=len(removed), owners=len(owning))
    counts: dict[str, Counter[Table]] = {}
    for change in held:
        counts.setdefault(change.policy, Counter())[change.table] += 1
    kept = tuple(change for change in plan.changes if change.policy not in removed)
    return Guarded(
        Plan(kept),
        tuple(
            HeldBack(name, {table: counts[name][table] for table in Table if counts[name][table]})
            for name in sorted(counts)
        ),
        removed=len(removed),
        owners=len(owning),
    )
