"""The mass-removal guard (sync_job.router.guard): which policies are removed, when their
removals are held back, and that the rest of the plan is untouched."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sync_job.model import Action, Gateway, PolicyTarget, ServicePort
from sync_job.router.guard import guard, is_mass_removal, owners
from sync_job.router.ownership import Ownership
from sync_job.router.planner import plan_router
from sync_job.router.tables import Table

OWN = Ownership()
MARKER = {".id": "*M", "chain": "forward", "action": "passthrough", "comment": OWN.marker_comment}


def target(name: str, ip: str = "10.0.0.5") -> PolicyTarget:
    return PolicyTarget(
        name, ("203.0.113.7",), Gateway("default", name, ip, (ServicePort("tcp", 80),))
    )


def router_with(*names: str) -> dict[Table, list[dict[str, str]]]:
    """The tables a converged router holds for these policies (ids *1, *2, …)."""
    tables: dict[Table, list[dict[str, str]]] = {table: [] for table in Table}
    tables[Table.FILTER].append(dict(MARKER))
    plan = plan_router([target(n) for n in names], tables, OWN)
    for number, change in enumerate(plan.changes, start=1):
        assert change.action is Action.CREATE
        row = {".id": f"*{number}", **change.after}
        if change.table is Table.FILTER:
            tables[Table.FILTER].insert(0, row)
        else:
            tables[change.table].append(row)
    assert not plan_router([target(n) for n in names], tables, OWN)
    return tables


def policies_of(changes: Sequence[object]) -> set[str]:
    return {change.policy for change in changes}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("removed", "owning", "held"),
    [(3, 4, True), (2, 3, True), (2, 4, False), (1, 4, False), (1, 1, False), (2, 2, True)],
)
def test_the_rule_is_more_than_half_and_at_least_two(removed: int, owning: int, held: bool) -> None:
    assert is_mass_removal(removed, owning) is held


def test_owners_are_read_from_every_table_and_foreign_rows_are_not_owners() -> None:
    tables = router_with("a", "b")
    tables[Table.NAT].append({".id": "*F", "chain": "dstnat", "comment": "ssh to nas"})
    # an address list alone makes its policy an owner
    tables[Table.ADDRESS_LIST].append({".id": "*L", "list": OWN.address_list("c"), "address": "x"})
    assert owners(tables, OWN) == {"a", "b", "c"}


def test_three_of_four_removed_are_held_back_and_the_rest_of_the_plan_stays() -> None:
    tables = router_with("a", "b", "c", "d")
    # d stays and changes (a new gateway): its update must survive the guard
    targets = [target("d", "10.0.0.9")]
    plan = plan_router(targets, tables, OWN)
    assert policies_of(plan.changes) == {"a", "b", "c", "d"}
    guarded = guard(plan, tables, OWN, {"d"})
    assert [h.policy for h in guarded.held_back] == ["a", "b", "c"]
    assert policies_of(guarded.plan.changes) == {"d"}
    assert guarded.plan.changes == tuple(c for c in plan.changes if c.policy == "d")
    (a, *_) = guarded.held_back
    # one filter rule, one NAT rule, one entry per removed policy
    assert dict(a.deletes) == {Table.FILTER: 1, Table.NAT: 1, Table.ADDRESS_LIST: 1}
    assert a.total == 3
    assert (guarded.removed, guarded.owners) == (3, 4)


def test_one_of_four_removed_goes_through() -> None:
    tables = router_with("a", "b", "c", "d")
    plan = plan_router([target(n) for n in "bcd"], tables, OWN)
    guarded = guard(plan, tables, OWN, {"b", "c", "d"})
    assert guarded.held_back == ()
    assert guarded.plan == plan and policies_of(plan.changes) == {"a"}


def test_a_failed_policy_is_evaluated_so_it_is_not_removed() -> None:
    tables = router_with("a", "b", "c")
    # b and c failed this run: frozen, still evaluated; only a is removed (1 of 3)
    plan = plan_router([], tables, OWN, frozenset({"b", "c"}))
    guarded = guard(plan, tables, OWN, {"b", "c"})
    assert guarded.held_back == () and policies_of(plan.changes) == {"a"}


def test_an_empty_source_read_holds_back_everything() -> None:
    tables = router_with("a", "b")
    plan = plan_router([], tables, OWN)
    guarded = guard(plan, tables, OWN, set())
    assert not guarded.plan
    assert [h.policy for h in guarded.held_back] == ["a", "b"]


def test_an_empty_plan_holds_nothing_back() -> None:
    tables = router_with("a", "b")
    guarded = guard(plan_router([], {Table.FILTER: [dict(MARKER)]}, OWN), tables, OWN, set())
    assert guarded.held_back == ()
