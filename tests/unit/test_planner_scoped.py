"""Planner scenarios for `--wan-interface-list`: the scope fields are added and removed in place.

Pure data in, pure data out: `plan_router` with and without the flag against router tables as a
run (with or without the flag) leaves them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sync_job.model import Action, Gateway, PolicyTarget, ServicePort
from sync_job.router.desired import policy_objects
from sync_job.router.ownership import Ownership
from sync_job.router.plan import Plan
from sync_job.router.planner import plan_router
from sync_job.router.tables import Table

OWN = Ownership()
WEB = PolicyTarget(
    "web",
    ("192.0.2.100", "198.51.100.5"),
    Gateway(
        "default",
        "web",
        "10.0.0.5",
        (ServicePort("tcp", 80), ServicePort("tcp", 443), ServicePort("udp", 53)),
    ),
)
FILTER_SCOPE = {
    "in-interface-list": "WAN",
    "connection-nat-state": "dstnat",
    "dst-address": "10.0.0.5",
}
NAT_SCOPE = {"in-interface-list": "WAN"}
# Foreign rules that already carry the scope fields: never part of any plan.
FOREIGN_FILTER = {
    ".id": "*1",
    "chain": "forward",
    "action": "accept",
    "in-interface-list": "WAN",
    "connection-nat-state": "dstnat",
    "dst-address": "192.168.88.2",
    "comment": "defconf: accept dstnat",
}
MARKER_ROW = {
    ".id": "*2",
    "chain": "forward",
    "action": "passthrough",
    "comment": "router-policy-sync::marker",
    "disabled": "true",
}
DROP = {
    ".id": "*3",
    "chain": "forward",
    "action": "drop",
    "in-interface-list": "WAN",
    "comment": "defconf: drop all from WAN not DSTNATed",
}
FOREIGN_NAT = {".id": "*4", "chain": "dstnat", "action": "dst-nat", "in-interface-list": "WAN"}
FOREIGN_IDS = {"*1", "*2", "*3", "*4"}

Tables = dict[Table, list[dict[str, str]]]


def converged(target: PolicyTarget, wan: str | None) -> Tables:
    """Router tables exactly as a correct run with `wan` leaves them."""
    tables: Tables = {
        Table.FILTER: [FOREIGN_FILTER],
        Table.NAT: [FOREIGN_NAT],
        Table.ADDRESS_LIST: [],
    }
    objects = policy_objects(target, OWN, "forward", wan)
    for number, obj in enumerate(objects):
        tables[obj.table].append({".id": f"*A{number}", **obj.fields})
    tables[Table.FILTER] += [MARKER_ROW, DROP]
    return tables


def plan(tables: Tables, wan: str | None, target: PolicyTarget = WEB) -> Plan:
    return plan_router([target], tables, OWN, wan_interface_list=wan)


def ids_of(tables: Tables, table: Table) -> dict[str, str]:
    return {row["comment"]: row[".id"] for row in tables[table] if "comment" in row}


def test_first_run_with_the_flag_creates_scoped_rules() -> None:
    empty: Tables = {
        Table.FILTER: [FOREIGN_FILTER, MARKER_ROW, DROP],
        Table.NAT: [FOREIGN_NAT],
        Table.ADDRESS_LIST: [],
    }
    result = plan(empty, "WAN")
    assert result.counts() == {Action.CREATE: 7}
    creates = {c.key: c.after for c in result.changes}
    assert creates["router-policy-sync::web::tcp"] == {
        "chain": "forward",
        "action": "accept",
        "protocol": "tcp",
        "dst-port": "80,443",
        "src-address-list": "router-policy-sync::web",
        **FILTER_SCOPE,
        "comment": "router-policy-sync::web::tcp",
    }
    assert creates["router-policy-sync::web::tcp::443"] == {
        "chain": "dstnat",
        "action": "dst-nat",
        "protocol": "tcp",
        "dst-port": "443",
        "src-address-list": "router-policy-sync::web",
        "to-addresses": "10.0.0.5",
        "to-ports": "443",
        **NAT_SCOPE,
        "comment": "router-policy-sync::web::tcp::443",
    }
    entries = [c.after for c in result.changes if c.table is Table.ADDRESS_LIST]
    assert all(set(entry) == {"list", "address"} for entry in entries)


@pytest.mark.parametrize("wan", [None, "WAN"])
def test_creates_never_send_empty_fields(wan: str | None) -> None:
    empty: Tables = {Table.FILTER: [MARKER_ROW], Table.NAT: [], Table.ADDRESS_LIST: []}
    result = plan(empty, wan)
    assert result.changes
    assert all(value for change in result.changes for value in change.after.values())
    if wan is None:
        names = {name for change in result.changes for name in change.after}
        assert names.isdisjoint(FILTER_SCOPE)


@pytest.mark.parametrize("wan", [None, "WAN"])
def test_a_converged_router_plans_nothing(wan: str | None) -> None:
    assert not plan(converged(WEB, wan), wan)


def test_dst_address_read_back_with_a_host_prefix_is_in_sync() -> None:
    tables = converged(WEB, "WAN")
    for row in tables[Table.FILTER]:
        if row.get("comment", "").startswith("router-policy-sync::web::"):
            row["dst-address"] = "10.0.0.5/32"
    assert not plan(tables, "WAN")


def test_adding_the_flag_updates_every_owned_rule_in_place_with_only_the_scope() -> None:
    tables = converged(WEB, None)
    result = plan(tables, "WAN")
    assert result.counts() == {Action.UPDATE: 5}  # 2 filter rules, 3 NAT rules
    filter_ids, nat_ids = ids_of(tables, Table.FILTER), ids_of(tables, Table.NAT)
    for change in result.changes:
        scope = FILTER_SCOPE if change.table is Table.FILTER else NAT_SCOPE
        ids = filter_ids if change.table is Table.FILTER else nat_ids
        assert change.after == scope, change.key
        assert change.id == ids[change.key]
        assert set(change.before).isdisjoint(scope)  # nothing to show: the fields were unset


def test_removing_the_flag_plans_updates_that_unset_the_scope() -> None:
    tables = converged(WEB, "WAN")
    result = plan(tables, None)
    assert result.counts() == {Action.UPDATE: 5}
    filter_ids, nat_ids = ids_of(tables, Table.FILTER), ids_of(tables, Table.NAT)
    for change in result.changes:
        scope = FILTER_SCOPE if change.table is Table.FILTER else NAT_SCOPE
        ids = filter_ids if change.table is Table.FILTER else nat_ids
        assert change.id == ids[change.key]
        assert change.after == dict.fromkeys(scope, ""), change.key
        assert {k: change.before[k] for k in scope} == scope


def test_a_single_hand_added_scope_field_is_removed_alone() -> None:
    tables = converged(WEB, None)
    tcp = next(
        r for r in tables[Table.FILTER] if r.get("comment") == "router-policy-sync::web::tcp"
    )
    tcp["connection-nat-state"] = "dstnat"
    result = plan(tables, None)
    assert [(c.action, c.key, dict(c.after)) for c in result.changes] == [
        (Action.UPDATE, "router-policy-sync::web::tcp", {"connection-nat-state": ""})
    ]
    assert result.changes[0].before["connection-nat-state"] == "dstnat"


def test_another_interface_list_is_replaced_in_place() -> None:
    result = plan(converged(WEB, "LAN"), "WAN")
    assert result.counts() == {Action.UPDATE: 5}
    assert {c.after["in-interface-list"] for c in result.changes} == {"WAN"}
    assert all(len(c.after) == 1 for c in result.changes)


def test_a_new_gateway_address_updates_dst_address_in_place() -> None:
    tables = converged(WEB, "WAN")
    moved = replace(WEB, gateway=replace(WEB.gateway, ip="10.0.0.9"))
    result = plan(tables, "WAN", moved)
    changes = {(c.table, c.key): c for c in result.changes}
    assert result.counts() == {Action.UPDATE: 5}
    filter_ids = ids_of(tables, Table.FILTER)
    for protocol in ("tcp", "udp"):
        change = changes[(Table.FILTER, f"router-policy-sync::web::{protocol}")]
        assert change.after == {"dst-address": "10.0.0.9"}
        assert change.before["dst-address"] == "10.0.0.5"
        assert change.id == filter_ids[change.key]
    nat = [c for c in result.changes if c.table is Table.NAT]
    assert {tuple(c.after.items()) for c in nat} == {(("to-addresses", "10.0.0.9"),)}


@pytest.mark.parametrize(
    ("read", "wanted"), [(None, None), ("WAN", "WAN"), (None, "WAN"), ("WAN", None)]
)
def test_foreign_rules_and_unmanaged_fields_are_left_alone(
    read: str | None, wanted: str | None
) -> None:
    tables = converged(WEB, read)
    for row in tables[Table.FILTER] + tables[Table.NAT]:
        if row.get("comment", "").startswith("router-policy-sync::web::"):
            row["log"] = "true"
            row["out-interface-list"] = "LAN"
    tables[Table.NAT].append(
        {".id": "*9", "chain": "dstnat", "action": "dst-nat", "dst-address": "1.2.3.4"}
    )
    result = plan(tables, wanted)
    assert all(change.action is Action.UPDATE for change in result.changes)
    assert {change.id for change in result.changes}.isdisjoint(FOREIGN_IDS | {"*9"})
    touched = {name for change in result.changes for name in change.after}
    assert touched <= set(FILTER_SCOPE)
    assert bool(result) == (read != wanted)


def test_nat_rules_manage_only_the_interface_list() -> None:
    """A NAT rule's own `dst-address` (e.g. the WAN address, added by hand) is not ours."""
    tables = converged(WEB, "WAN")
    for row in tables[Table.NAT]:
        if row.get("comment", "").startswith("router-policy-sync::web::"):
            row["dst-address"] = "198.51.100.1"
            row["connection-nat-state"] = "dstnat"
    assert not plan(tables, "WAN")
    nat = [c for c in plan(tables, None).changes if c.table is Table.NAT]
    assert len(nat) == 3 and all(c.after == {"in-interface-list": ""} for c in nat)
