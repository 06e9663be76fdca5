"""The execution order (`sync_job.router.order`): removals first (rules, then entries), then each
policy's writes together (entries, then rules), with the filter placements still valid and the
router ending exactly where the planner's own order ends, with the same writes."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from unittest.mock import patch

from hypothesis import example, given

from sync_job.model import Action
from sync_job.router import planner
from sync_job.router.apply import apply
from sync_job.router.order import is_entry_table, order_changes
from sync_job.router.plan import Change
from sync_job.router.tables import Table
from sync_job.testing.emulator import RouterOSEmulator
from tests.unit.test_planner_properties import (
    EMPTY_WORLD,
    HARD_WORLD,
    SETTINGS,
    World,
    load,
    make_plan,
    worlds,
    writer,
)


def change(action: Action, table: Table, key: str, policy: str, **kw: str | None) -> Change:
    return Change(action=action, table=table, key=key, policy=policy, reason="r", **kw)  # type: ignore[arg-type]


def keys(changes: Sequence[Change]) -> list[str]:
    return [c.key for c in changes]


C, U, M, D = Action.CREATE, Action.UPDATE, Action.MOVE, Action.DELETE
F, N, AL = Table.FILTER, Table.NAT, Table.ADDRESS_LIST


def test_removals_first_rules_before_entries_then_policy_after_policy() -> None:
    planned = [
        change(D, AL, "a-old-entry", "a"),
        change(C, AL, "a-entry", "a"),
        change(C, AL, "b-entry", "b"),
        change(D, N, "gone-nat", "gone"),
        change(D, F, "gone-rule", "gone"),
        change(U, F, "a-rule-update", "a"),
        change(C, F, "b-rule", "b", destination="marker", destination_id="*M"),
        change(C, F, "a-rule", "a", destination="b-rule"),
        change(C, N, "a-nat", "a"),
        change(D, AL, "gone-entry", "gone"),
    ]
    assert keys(order_changes(planned)) == [
        "gone-nat", "gone-rule",  # rule removals, in the planner's order
        "a-old-entry", "gone-entry",  # then entry removals
        "b-entry", "b-rule",  # b first: a's rule is placed before b's, created here
        "a-entry", "a-rule-update", "a-rule", "a-nat",
    ]  # fmt: skip


def test_a_policys_entries_go_before_its_rules_even_when_planned_after_them() -> None:
    """As when a second address family's changes follow the first's."""
    planned = [
        change(C, F, "a-rule", "a", destination="marker", destination_id="*M"),
        change(C, N, "a-nat", "a"),
        change(C, AL, "a-entry", "a"),
        change(U, AL, "a-entry-2", "a"),
    ]
    assert keys(order_changes(planned)) == ["a-entry", "a-entry-2", "a-rule", "a-nat"]


def test_unconstrained_policies_go_fewest_changes_first_then_by_first_appearance() -> None:
    planned = [
        change(C, AL, "a-entry", "a"),
        change(U, AL, "c-entry", "c"),
        change(C, AL, "b-entry", "b"),
        change(U, N, "b-nat", "b"),
        change(U, N, "a-nat", "a"),
        change(C, AL, "d-entry", "d"),
    ]
    assert keys(order_changes(planned)) == [
        "c-entry", "d-entry", "a-entry", "a-nat", "b-entry", "b-nat"
    ]  # fmt: skip


def test_a_policy_left_half_way_finishes_before_a_chained_one_starts() -> None:
    """z's rule exists (an earlier run was cut after it); y's is placed before it."""
    planned = [
        change(C, AL, "y-entry", "y"),
        change(C, AL, "y-entry-2", "y"),
        change(C, F, "y-rule", "y", destination="z-rule", destination_id="*Z"),
        change(C, N, "z-nat", "z"),
    ]
    assert keys(order_changes(planned)) == ["z-nat", "y-entry", "y-entry-2", "y-rule"]


def test_placements_in_two_rule_tables_order_policies_for_both() -> None:
    """As with a second address family: each table's placements keep their relative order."""
    planned = [
        change(C, F, "z-rule", "z", destination="marker", destination_id="*M"),
        change(C, F, "x-rule", "x", destination="z-rule"),
        change(C, N, "z-rule6", "z", destination="marker6", destination_id="*M6"),
        change(C, N, "y-rule6", "y", destination="z-rule6"),
        change(C, N, "x-rule6", "x", destination="y-rule6"),
    ]
    assert keys(order_changes(planned)) == ["z-rule", "z-rule6", "y-rule6", "x-rule", "x-rule6"]


def test_interleaved_placements_keep_the_planners_order_after_the_removals() -> None:
    planned = [
        change(C, F, "a1", "a", destination="marker", destination_id="*M"),
        change(C, F, "b1", "b", destination="a1"),
        change(C, F, "a2", "a", destination="b1"),
        change(D, AL, "e", "a"),
        change(D, F, "r", "b"),
    ]
    assert keys(order_changes(planned)) == ["r", "e", "a1", "b1", "a2"]


def test_two_tables_that_disagree_keep_the_planners_order() -> None:
    planned = [
        change(C, F, "a", "a", destination="marker", destination_id="*M"),
        change(C, F, "b", "b", destination="a"),
        change(C, N, "b6", "b", destination="marker6", destination_id="*M6"),
        change(C, N, "a6", "a", destination="b6"),
    ]
    assert keys(order_changes(planned)) == ["a", "b", "b6", "a6"]


VARY = (".id", "creation-time")  # set by the router when the write happens


def final_state(emulator: RouterOSEmulator) -> dict[Table, list[list[tuple[str, str]]]]:
    """Every row but what depends on when it was written (`VARY`): filter rules in
    router order; NAT rules and entries as a sorted list, since the planner never orders them
    (a create is appended, so their order is not a planned outcome, today or now)."""
    state = {}
    for table in Table:
        rows = [sorted((k, v) for k, v in r.items() if k not in VARY) for r in emulator.rows(table)]
        state[table] = rows if table is Table.FILTER else sorted(rows)
    return state


def check_shape(changes: Sequence[Change]) -> None:
    actions = [c.action for c in changes]
    removals = actions.count(D)
    assert D not in actions[removals:], "a removal after a create, update or move"
    entry_removal = [is_entry_table(c.table) for c in changes[:removals]]
    assert entry_removal == sorted(entry_removal), "an entry removal before a rule removal"
    seen: list[str] = []
    for c in changes[removals:]:
        if not seen or seen[-1] != c.policy:
            assert c.policy not in seen, f"{c.policy}'s writes are not together"
            seen.append(c.policy)
    for policy in seen:
        kinds = [is_entry_table(c.table) for c in changes[removals:] if c.policy == policy]
        assert kinds == sorted(kinds, reverse=True), f"{policy}: a rule before its entries"


@contextmanager
def warnings_of_the_applier() -> Iterator[list[str]]:
    """The applier's warnings, e.g. a rule placed elsewhere because its destination was not."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler, logger = Keep(logging.WARNING), logging.getLogger("sync_job.router.apply")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


@SETTINGS
@given(worlds())
@example(EMPTY_WORLD)
@example(HARD_WORLD)
def test_the_execution_order_ends_where_the_planners_order_ends(world: World) -> None:
    reference, reordered = load(world), load(world)
    ends = []
    for emulator, order in ((reference, tuple), (reordered, order_changes)):
        router, http = writer(emulator)
        with http, patch.object(planner, "order_changes", order):
            plan = make_plan(world, router.read_tables())
            emulator.reset_counts()
            with warnings_of_the_applier() as warned:
                result = apply(plan, router)
        assert result.ok, result.failed
        assert warned == []  # every rule went before its planned destination
        ends.append((plan.changes, emulator.requests.copy()))
    (planned, planned_requests), (ordered, ordered_requests) = ends
    assert Counter(map(repr, planned)) == Counter(map(repr, ordered))
    check_shape(ordered)
    assert final_state(reordered) == final_state(reference)
    assert ordered_requests == planned_requests  # the same writes: no extra move, no retry


def test_the_property_sees_plans_with_placements_across_policies() -> None:
    """The worlds above do plan rules placed before another policy's rule created in the same
    plan, and removals next to creates, so the property is about the hard cases."""
    hits = Counter[str]()

    @SETTINGS
    @given(worlds())
    def survey(world: World) -> None:
        emulator = load(world)
        router, http = writer(emulator)
        with http:
            changes = make_plan(world, router.read_tables()).changes
        created = {c.key: c.policy for c in changes if c.action in (C, M)}
        hits["chained"] += any(
            c.destination in created and created[c.destination] != c.policy for c in changes
        )
        hits["mixed"] += len({c.action for c in changes}) >= 3

    survey()
    assert hits["chained"] >= 20 and hits["mixed"] >= 20, hits
