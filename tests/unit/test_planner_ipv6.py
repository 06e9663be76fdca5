"""Planner scenarios for IPv6 and dual-stack policies: `plan_router` over both families.

The IPv6 objects are an address list in /ipv6/firewall/address-list and one accept rule per
protocol in /ipv6/firewall/filter naming the gateway's IPv6 address; never an IPv6 NAT rule.
Each family has its own marker; the other family's tables are never in its part of the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pytest

from sync_job.model import Action, Family, Gateway, PolicyTarget, ServicePort
from sync_job.router.desired import desired_objects
from sync_job.router.ownership import Ownership
from sync_job.router.plan import Plan
from sync_job.router.planner import MarkerError, marker_problems, plan_router
from sync_job.router.tables import Table

OWN = Ownership()
BOTH = frozenset(Family)
PORTS = (ServicePort("tcp", 80), ServicePort("tcp", 443), ServicePort("udp", 53))
WEB = PolicyTarget(
    "web",
    ("198.51.100.5", "2001:db8:5::10/128", "2001:db8:6::/48"),
    Gateway("default", "web", "203.0.113.50", PORTS, "2001:db8:100::50"),
    BOTH,
)
ONLY6 = PolicyTarget(
    "six",
    ("2001:db8:7::1/128",),
    Gateway("default", "six", None, (ServicePort("tcp", 22),), "2001:db8:100::51"),
    frozenset({Family.IPV6}),
)

MARKER4 = MappingProxyType(
    {
        ".id": "*2",
        "chain": "forward",
        "action": "passthrough",
        "comment": "router-policy-sync::marker",
    }
)
MARKER6 = MappingProxyType(
    {
        ".id": "*62",
        "chain": "forward",
        "action": "passthrough",
        "comment": "router-policy-sync::marker",
    }
)
FOREIGN6 = {
    Table.IPV6_FILTER: MappingProxyType(
        {".id": "*61", "chain": "forward", "action": "accept", "comment": "defconf: accept ICMPv6"}
    ),
    Table.IPV6_NAT: MappingProxyType(
        {".id": "*64", "chain": "srcnat", "action": "masquerade", "comment": "nat66"}
    ),
    Table.IPV6_ADDRESS_LIST: MappingProxyType(
        {".id": "*65", "list": "bad_ipv6", "address": "2001:db8:dead::/48", "disabled": "false"}
    ),
}
DROP6 = MappingProxyType({".id": "*63", "chain": "forward", "action": "drop", "comment": "drop"})

Tables = dict[Table, list[dict[str, str]]]


def empty_router() -> Tables:
    return {
        Table.FILTER: [dict(MARKER4)],
        Table.NAT: [],
        Table.ADDRESS_LIST: [],
        Table.IPV6_FILTER: [dict(FOREIGN6[Table.IPV6_FILTER]), dict(MARKER6), dict(DROP6)],
        Table.IPV6_NAT: [dict(FOREIGN6[Table.IPV6_NAT])],
        Table.IPV6_ADDRESS_LIST: [dict(FOREIGN6[Table.IPV6_ADDRESS_LIST])],
    }


def converged(*targets: PolicyTarget) -> Tables:
    """The tables as a correct run leaves them (IPv6 rules as one sorted block above marker)."""
    tables = empty_router()
    chains = {Family.IPV4: "forward", Family.IPV6: "forward"}
    objects = desired_objects(targets, OWN, chains)
    for table in Table:
        rows = [o for o in objects if o.table is table]
        if table.is_filter:
            rows.sort(key=lambda o: o.fields["comment"])
            at = next(i for i, r in enumerate(tables[table]) if OWN.is_marker(table, r))
            tables[table][at:at] = [{".id": f"*{table.family}F{n}", **o.fields}
                                    for n, o in enumerate(rows)]  # fmt: skip
        else:
            tables[table] += [
                {".id": f"*{table.family}{n}", **o.fields} for n, o in enumerate(rows)
            ]
    return tables


def plan(
    targets: tuple[PolicyTarget, ...], tables: Mapping[Table, list[dict[str, str]]], **kw: object
) -> Plan:
    families = kw.pop("families", BOTH)
    return plan_router(targets, tables, OWN, families=families, **kw)  # type: ignore[arg-type]


def summary(result: Plan) -> list[tuple[str, str, str]]:
    return [(c.action.value, c.table.label, c.key) for c in result.changes]


def find(tables: Tables, table: Table, key: str) -> dict[str, str]:
    return next(row for row in tables[table] if OWN.identity(table, row) == key)


def test_first_run_creates_ipv6_entries_and_accept_rules_to_the_gateway_and_no_nat() -> None:
    result = plan((WEB,), empty_router())
    six = [c for c in result.changes if c.table.family is Family.IPV6]
    assert [(c.action.value, c.table.label, c.key) for c in six] == [
        ("create", "ipv6 address-list", "router-policy-sync::web 2001:db8:5::10/128"),
        ("create", "ipv6 address-list", "router-policy-sync::web 2001:db8:6::/48"),
        ("create", "ipv6 filter", "router-policy-sync::web::udp"),
        ("create", "ipv6 filter", "router-policy-sync::web::tcp"),
    ]
    tcp = next(c for c in six if c.key.endswith("::tcp"))
    assert dict(tcp.after) == {
        "chain": "forward",
        "action": "accept",
        "protocol": "tcp",
        "dst-port": "80,443",
        "src-address-list": "router-policy-sync::web",
        "dst-address": "2001:db8:100::50/128",
        "comment": "router-policy-sync::web::tcp",
    }
    # placed as one block directly above the IPv6 marker, by id; the IPv4 part has its own
    assert (tcp.destination, tcp.destination_id) == ("router-policy-sync::web::udp", None)
    udp = next(c for c in six if c.key.endswith("::udp"))
    assert (udp.destination, udp.destination_id) == ("router-policy-sync::marker", "*62")
    assert not any(c.table is Table.IPV6_NAT for c in result.changes)
    four = [c for c in result.changes if c.table.family is Family.IPV4]
    assert {c.key for c in four if c.table is Table.ADDRESS_LIST} == {
        "router-policy-sync::web 198.51.100.5"
    }
    assert all(c.destination_id in (None, "*2") for c in four if c.table is Table.FILTER)
    # one policy's writes together, its entries (both families) before its rules
    kinds = [c.table.is_address_list for c in result.changes]
    assert kinds == sorted(kinds, reverse=True)


def test_an_ipv6_only_policy_has_no_ipv4_objects() -> None:
    result = plan((ONLY6,), empty_router())
    assert {c.table for c in result.changes} == {Table.IPV6_ADDRESS_LIST, Table.IPV6_FILTER}


def test_a_converged_dual_stack_router_plans_nothing() -> None:
    assert not plan((WEB, ONLY6), converged(WEB, ONLY6))


def test_the_router_s_ipv6_spellings_are_no_drift() -> None:
    """RouterOS keeps IPv6 in RFC 5952 form with /128 on hosts (lab cases 1, 2, 30): an upper
    case, uncompressed or bare form read back compares equal to what was written."""
    tables = converged(WEB)
    entry = find(tables, Table.IPV6_ADDRESS_LIST, "router-policy-sync::web 2001:db8:5::10/128")
    entry["address"] = "2001:DB8:5:0:0:0:0:10"
    rule = find(tables, Table.IPV6_FILTER, "router-policy-sync::web::tcp")
    rule["dst-address"] = "2001:db8:100:0::50"
    rule["dst-port"] = "443,80"
    assert not plan((WEB,), tables)


DRIFT = {
    "dst_address_changed": (Table.IPV6_FILTER, "router-policy-sync::web::tcp",
                            {"dst-address": "2001:db8:100::99/128"}),
    "ports_changed": (Table.IPV6_FILTER, "router-policy-sync::web::tcp", {"dst-port": "80"}),
    "rule_disabled": (Table.IPV6_FILTER, "router-policy-sync::web::udp", {"disabled": "true"}),
    "action_changed": (Table.IPV6_FILTER, "router-policy-sync::web::tcp", {"action": "drop"}),
    "list_changed": (Table.IPV6_FILTER, "router-policy-sync::web::udp",
                     {"src-address-list": "other"}),
    "entry_disabled": (Table.IPV6_ADDRESS_LIST, "router-policy-sync::web 2001:db8:6::/48",
                       {"disabled": "true"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DRIFT))
def test_drift_of_each_kind_in_ipv6_is_repaired_in_place(name: str) -> None:
    table, key, edit = DRIFT[name]
    tables = converged(WEB)
    row = find(tables, table, key)
    wanted = {field: row.get(field, "false") for field in edit}
    row.update(edit)
    [change] = plan((WEB,), tables).changes
    assert (change.action, change.table, change.key, change.id) == (
        Action.UPDATE, table, key, row[".id"],
    )  # fmt: skip
    assert dict(change.after) == wanted


def test_an_ipv6_entry_deleted_by_hand_is_created_again() -> None:
    tables = converged(WEB)
    key = "router-policy-sync::web 2001:db8:6::/48"
    tables[Table.IPV6_ADDRESS_LIST].remove(find(tables, Table.IPV6_ADDRESS_LIST, key))
    assert summary(plan((WEB,), tables)) == [("create", "ipv6 address-list", key)]


def test_foreign_ipv6_objects_are_never_in_a_plan_even_when_they_look_owned() -> None:
    tables = converged(WEB)
    lookalikes = [
        (Table.IPV6_ADDRESS_LIST, {"list": "router-policy-sync-other::web", "address": "::2/128"}),
        (Table.IPV6_FILTER, {"chain": "forward", "comment": "router-policy-sync::Web::tcp"}),
        (Table.IPV6_FILTER, {"chain": "forward", "comment": "router-policy-sync::marker2"}),
        (Table.IPV6_NAT, {"chain": "dstnat", "comment": "router-policy-sync-x::web::tcp::80"}),
    ]
    for n, (table, row) in enumerate(lookalikes):
        tables[table].insert(0, {".id": f"*9{n}", **row})
    result = plan((WEB,), tables)
    assert not result
    foreign = {".id" for rows in empty_router().values() for row in rows}
    assert not {c.id for c in result.changes} & (foreign | {f"*9{n}" for n in range(4)})


def test_orphans_in_ipv6_are_removed_rules_before_their_list() -> None:
    """A policy gone, and an owned IPv6 NAT rule (never wanted): all deleted, rules first."""
    tables = converged(WEB, ONLY6)
    tables[Table.IPV6_NAT].append(
        {".id": "*6A", "chain": "dstnat", "comment": "router-policy-sync::web::tcp::80"}
    )
    result = plan((WEB,), tables)
    assert summary(result) == [
        ("delete", "ipv6 nat", "router-policy-sync::web::tcp::80"),
        ("delete", "ipv6 filter", "router-policy-sync::six::tcp"),
        ("delete", "ipv6 address-list", "router-policy-sync::six 2001:db8:7::1/128"),
    ]


def test_ipv6_rules_out_of_order_above_the_marker_are_moved_by_id() -> None:
    tables = converged(WEB, ONLY6)
    rules = tables[Table.IPV6_FILTER]
    owned = [i for i, r in enumerate(rules) if OWN.owner_policy(Table.IPV6_FILTER, r)]
    first, second = owned[0], owned[1]
    rules[first], rules[second] = rules[second], rules[first]
    [change] = plan((WEB, ONLY6), tables).changes
    assert (change.action, change.table) == (Action.MOVE, Table.IPV6_FILTER)
    assert change.id in {rules[first][".id"], rules[second][".id"]}


def test_an_ipv6_rule_below_the_marker_or_above_a_foreign_rule_is_moved_into_the_block() -> None:
    tables = converged(WEB)
    rules = tables[Table.IPV6_FILTER]
    udp = find(tables, Table.IPV6_FILTER, "router-policy-sync::web::udp")
    rules.remove(udp)
    rules.append(udp)  # below the drop rule
    [change] = plan((WEB,), tables).changes
    assert (change.action, change.id, change.destination_id) == (Action.MOVE, udp[".id"], "*62")


def test_ipv6_plans_need_the_ipv6_marker_and_say_how_to_make_it() -> None:
    tables = converged(WEB)
    tables[Table.IPV6_FILTER].remove(dict(MARKER6))
    with pytest.raises(MarkerError) as caught:
        plan((WEB,), tables)
    assert caught.value.family is Family.IPV6
    assert "/ipv6 firewall filter add chain=forward action=passthrough" in str(caught.value)
    assert list(marker_problems(tables, OWN, BOTH)) == [Family.IPV6]
    # IPv4 alone still plans, and never looks at the IPv6 tables
    assert not plan((WEB,), tables, families={Family.IPV4})


def test_two_ipv6_markers_are_a_problem_of_ipv6_only() -> None:
    tables = converged(WEB)
    tables[Table.IPV6_FILTER].append({**MARKER6, ".id": "*6F"})
    problems = marker_problems(tables, OWN, BOTH)
    assert list(problems) == [Family.IPV6] and "*62, *6F" in str(problems[Family.IPV6])


def test_with_ipv4_only_the_ipv6_tables_are_never_planned() -> None:
    """IPv6 objects an earlier dual-stack run made stay untouched when only IPv4 is synced:
    the job does not read /ipv6 then, so it cannot judge them (README: --ip-families)."""
    tables = converged(WEB)
    ipv4_web = PolicyTarget("web", ("198.51.100.5",), WEB.gateway, frozenset({Family.IPV4}))
    assert not plan((ipv4_web,), tables, families={Family.IPV4})


def test_a_frozen_policy_keeps_its_ipv6_objects_but_not_rules_to_a_released_address() -> None:
    tables = converged(WEB)
    result = plan((), tables, frozen={"web"})
    assert not result
    released = {"web": {"2001:db8:100::50": "2001:db8:100::50 now belongs to Service x/y"}}
    result = plan((), tables, frozen={"web"}, released=released)
    assert summary(result) == [
        ("delete", "ipv6 filter", "router-policy-sync::web::tcp"),
        ("delete", "ipv6 filter", "router-policy-sync::web::udp"),
    ]
