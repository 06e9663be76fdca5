"""Planner scenarios: (desired, router tables as read) -> plan. Pure data in, pure data out."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import pytest

from sync_job.model import Action, Gateway, PolicyTarget, ServicePort
from sync_job.router.desired import policy_objects
from sync_job.router.ownership import Ownership
from sync_job.router.plan import Plan
from sync_job.router.planner import Marker, MarkerError, find_marker, normalise, plan_changes
from sync_job.router.tables import RouterObject, Table

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
DNS = PolicyTarget(
    "dns", ("203.0.113.7",), Gateway("infra", "dns", "10.0.0.6", (ServicePort("udp", 53),))
)

# Read-only: `converged` hands each test its own copies, so no test can change another's rows.
FOREIGN_FILTER = MappingProxyType(
    {".id": "*1", "chain": "forward", "action": "accept", "comment": "defconf"}
)
MARKER_ROW = MappingProxyType(
    {
        ".id": "*2",
        "chain": "forward",
        "action": "passthrough",
        "comment": "router-policy-sync::marker",
        "disabled": "true",
    }
)
DROP = MappingProxyType(
    {".id": "*3", "chain": "forward", "action": "drop", "comment": "defconf: drop"}
)
FOREIGN_NAT = MappingProxyType({".id": "*4", "chain": "srcnat", "action": "masquerade"})
FOREIGN_ENTRY = MappingProxyType(
    {".id": "*5", "list": "blocklist", "address": "192.0.2.66", "disabled": "false"}
)
MARKER = Marker("*2", "forward", "router-policy-sync::marker")
FOREIGN_IDS = {"*1", "*2", "*3", "*4", "*5"}


def desired(*targets: PolicyTarget) -> list[RouterObject]:
    return [obj for target in targets for obj in policy_objects(target, OWN, "forward")]


def converged(*targets: PolicyTarget) -> dict[Table, list[dict[str, str]]]:
    """Router tables exactly as a correct run leaves them (ids *A0 onwards)."""
    tables: dict[Table, list[dict[str, str]]] = {
        Table.FILTER: [dict(FOREIGN_FILTER)],
        Table.NAT: [dict(FOREIGN_NAT)],
        Table.ADDRESS_LIST: [dict(FOREIGN_ENTRY)],
    }
    objects = desired(*targets)
    rules = sorted(
        (o for o in objects if o.table is Table.FILTER), key=lambda o: o.fields["comment"]
    )
    for number, obj in enumerate(o for o in objects if o.table is not Table.FILTER):
        tables[obj.table].append({".id": f"*A{number}", **obj.fields})
    tables[Table.FILTER] += [{".id": f"*F{n}", **o.fields} for n, o in enumerate(rules)]
    tables[Table.FILTER] += [dict(MARKER_ROW), dict(DROP)]
    return tables


def summary(result: Plan) -> list[tuple[str, str, str]]:
    return [(c.action.value, c.table.kind, c.key) for c in result.changes]


def test_first_run_only_creates_and_puts_lists_before_rules() -> None:
    result = plan_changes(desired(WEB), converged(), OWN, MARKER)
    assert result.counts() == {Action.CREATE: 7}  # 2 entries, 2 filter rules, 3 NAT rules
    tables = [change.table for change in result.changes]
    assert tables.index(Table.FILTER) > max(
        i for i, t in enumerate(tables) if t is Table.ADDRESS_LIST
    )
    filter_creates = [c for c in result.changes if c.table is Table.FILTER]
    # last rule of the block first, placed before the marker; the next before it
    assert [(c.key, c.destination, c.destination_id) for c in filter_creates] == [
        ("router-policy-sync::web::udp", "router-policy-sync::marker", "*2"),
        ("router-policy-sync::web::tcp", "router-policy-sync::web::udp", None),
    ]
    assert filter_creates[1].after["dst-port"] == "80,443"


def test_second_run_on_converged_router_plans_nothing() -> None:
    assert not plan_changes(desired(WEB, DNS), converged(WEB, DNS), OWN, MARKER)


def edited(
    tables: dict[Table, list[dict[str, str]]], table: Table, comment_or_address: str, **fields: str
) -> dict[Table, list[dict[str, str]]]:
    for row in tables[table]:
        if comment_or_address in (row.get("comment"), row.get("address")):
            row.update(fields)
    return tables


@pytest.mark.parametrize(
    ("name", "tables", "expected"),
    [
        (
            "nat_to_addresses_changed",
            lambda t: edited(
                t, Table.NAT, "router-policy-sync::web::tcp::80", **{"to-addresses": "10.9.9.9"}
            ),
            [("update", "nat", "router-policy-sync::web::tcp::80")],
        ),
        (
            "filter_ports_changed",
            lambda t: edited(t, Table.FILTER, "router-policy-sync::web::tcp", **{"dst-port": "80"}),
            [("update", "filter", "router-policy-sync::web::tcp")],
        ),
        (
            "owned_rule_disabled_by_hand",
            lambda t: edited(t, Table.NAT, "router-policy-sync::web::udp::53", disabled="true"),
            [("update", "nat", "router-policy-sync::web::udp::53")],
        ),
        (
            "entry_disabled_by_hand",
            lambda t: edited(t, Table.ADDRESS_LIST, "192.0.2.100", disabled="true"),
            [("update", "address-list", "router-policy-sync::web 192.0.2.100")],
        ),
        (
            "entry_deleted_by_hand",
            lambda t: {
                **t,
                Table.ADDRESS_LIST: [
                    r for r in t[Table.ADDRESS_LIST] if r.get("address") != "198.51.100.5"
                ],
            },
            [("create", "address-list", "router-policy-sync::web 198.51.100.5")],
        ),
        (
            "stray_entry_in_owned_list",
            lambda t: {
                **t,
                Table.ADDRESS_LIST: [
                    *t[Table.ADDRESS_LIST],
                    {".id": "*99", "list": "router-policy-sync::web", "address": "192.0.2.1"},
                ],
            },
            [("delete", "address-list", "router-policy-sync::web 192.0.2.1")],
        ),
        (
            "user_added_fields_are_not_managed",
            lambda t: edited(
                t,
                Table.FILTER,
                "router-policy-sync::web::tcp",
                log="true",
                **{"out-interface-list": "WAN"},
            ),
            [],
        ),
        (
            "ports_in_another_order_and_slash32_are_the_same",
            lambda t: edited(
                edited(t, Table.FILTER, "router-policy-sync::web::tcp", **{"dst-port": "443, 80"}),
                Table.ADDRESS_LIST,
                "192.0.2.100",
                address="192.0.2.100/32",
            ),
            [],
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_drift_of_each_kind_is_repaired_in_place(
    name: str, tables: object, expected: list[tuple[str, str, str]]
) -> None:
    result = plan_changes(desired(WEB), tables(converged(WEB)), OWN, MARKER)  # type: ignore[operator]
    assert summary(result) == expected
    for change in result.changes:
        assert change.id not in FOREIGN_IDS
        if change.action is Action.UPDATE:
            assert change.id  # PATCH on the existing row keeps its position and counters


def test_foreign_objects_are_never_in_a_plan_even_when_nothing_is_wanted() -> None:
    tables = converged(WEB)
    tables[Table.FILTER].insert(
        0,
        {
            ".id": "*50",
            "chain": "input",
            "action": "drop",
            "comment": "router-policy-sync-other::x::tcp",
        },
    )
    tables[Table.NAT].append(
        {
            ".id": "*51",
            "chain": "dstnat",
            "action": "dst-nat",
            "comment": "my own router-policy-sync::web::tcp::80",
        }
    )
    tables[Table.ADDRESS_LIST].append(
        {".id": "*52", "list": "router-policy-sync", "address": "1.1.1.1"}
    )
    tables[Table.FILTER].append(
        {
            ".id": "*53",
            "chain": "forward",
            "action": "passthrough",
            "comment": "router-policy-sync::x::tcp",
            "dynamic": "true",
        }
    )
    result = plan_changes([], tables, OWN, MARKER)
    touched = {change.id for change in result.changes}
    assert touched.isdisjoint(FOREIGN_IDS | {"*50", "*51", "*52", "*53"})
    assert result.counts() == {Action.DELETE: 7}  # every owned object of the gone policy
    # rules go before the entries of the list they use
    kinds = [change.table for change in result.changes]
    assert kinds.index(Table.ADDRESS_LIST) > max(
        i for i, t in enumerate(kinds) if t is not Table.ADDRESS_LIST
    )


def test_failed_policy_keeps_exactly_what_it_had() -> None:
    tables = converged(WEB, DNS)
    edited(tables, Table.NAT, "router-policy-sync::dns::udp::53", **{"to-addresses": "10.1.1.1"})
    result = plan_changes(desired(WEB), tables, OWN, MARKER, frozen={"dns"})
    assert not result
    assert summary(plan_changes(desired(WEB), tables, OWN, MARKER)) == [
        ("delete", "nat", "router-policy-sync::dns::udp::53"),
        ("delete", "filter", "router-policy-sync::dns::udp"),
        ("delete", "address-list", "router-policy-sync::dns 203.0.113.7"),
    ]


def test_duplicates_keep_one_and_delete_the_rest() -> None:
    tables = converged(WEB)
    tcp80 = next(
        r for r in tables[Table.NAT] if r.get("comment") == "router-policy-sync::web::tcp::80"
    )
    entry = next(r for r in tables[Table.ADDRESS_LIST] if r.get("address") == "192.0.2.100")
    tables[Table.NAT].append({**tcp80, ".id": "*D1", "to-addresses": "10.7.7.7"})
    tables[Table.ADDRESS_LIST].insert(0, {**entry, ".id": "*D2", "disabled": "true"})
    result = plan_changes(desired(WEB), tables, OWN, MARKER)
    assert [(c.action, c.id) for c in result.changes] == [
        (Action.DELETE, "*D1"),  # the drifted copy goes, the matching one stays
        (Action.DELETE, "*D2"),  # the disabled copy goes, the enabled one stays (rules first)
    ]


def ids_of_block(tables: dict[Table, list[dict[str, str]]]) -> list[str]:
    return [r[".id"] for r in tables[Table.FILTER]]


@pytest.mark.parametrize(
    ("name", "reorder", "moves"),
    [
        ("rule_moved_below_marker", lambda rows: [rows[0], rows[2], rows[3], rows[4], rows[1]], 1),
        ("rule_moved_to_top", lambda rows: [rows[2], rows[0], rows[1], rows[3], rows[4]], 1),
        ("block_swapped", lambda rows: [rows[0], rows[2], rows[1], rows[3], rows[4]], 1),
        (
            "foreign_rule_inside_block",
            lambda rows: [rows[1], rows[0], rows[2], rows[3], rows[4]],
            1,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_misplaced_filter_rules_are_moved_back_with_as_few_moves_as_possible(
    name: str, reorder: object, moves: int
) -> None:
    tables = converged(WEB)  # filter: foreign *1, tcp *F0, udp *F1, marker *2, drop *3
    tables[Table.FILTER] = reorder(tables[Table.FILTER])  # type: ignore[operator]
    result = plan_changes(desired(WEB), tables, OWN, MARKER)
    assert result.counts() == {Action.MOVE: moves}
    rows = simulate_moves(tables[Table.FILTER], result)
    marker_at = [r[".id"] for r in rows].index("*2")
    assert [r.get("comment") for r in rows[marker_at - 2 : marker_at]] == [
        "router-policy-sync::web::tcp",
        "router-policy-sync::web::udp",
    ]
    foreign_order = [r[".id"] for r in rows if r[".id"] in FOREIGN_IDS]
    assert foreign_order == [r[".id"] for r in tables[Table.FILTER] if r[".id"] in FOREIGN_IDS]


def simulate_moves(rows: Sequence[dict[str, str]], result: Plan) -> list[dict[str, str]]:
    rows = list(rows)
    for change in result.changes:
        assert change.action is Action.MOVE
        moving = next(r for r in rows if r[".id"] == change.id)
        rows.remove(moving)
        at = [r[".id"] for r in rows].index(str(change.destination_id))
        rows.insert(at, moving)
    return rows


def test_marker_must_exist_once() -> None:
    with pytest.raises(
        MarkerError, match="no filter rule with comment 'router-policy-sync::marker'"
    ):
        find_marker([FOREIGN_FILTER], OWN)
    with pytest.raises(MarkerError, match=r"2 filter rules \(\*2, \*9\)"):
        find_marker([MARKER_ROW, {**MARKER_ROW, ".id": "*9"}], OWN)
    assert find_marker([FOREIGN_FILTER, MARKER_ROW], Ownership()).chain == "forward"
    with pytest.raises(MarkerError):
        find_marker([MARKER_ROW], Ownership("cluster-b"))


def test_rules_follow_the_marker_chain() -> None:
    tables = converged(WEB)
    for row in tables[Table.FILTER]:
        if row[".id"] == "*2":
            row["chain"] = "input"
    wanted = list(policy_objects(WEB, OWN, "input"))
    result = plan_changes(wanted, tables, OWN, Marker("*2", "input", MARKER.comment))
    assert {(c.action, c.after.get("chain")) for c in result.changes} == {(Action.UPDATE, "input")}


@pytest.mark.parametrize(
    ("field", "value", "canonical"),
    [
        ("dst-port", "443,80, 8000-8100", "80,443,8000-8100"),
        ("address", "1.2.3.4/32", "1.2.3.4"),
        ("protocol", "TCP", "tcp"),
        ("disabled", "yes", "true"),
        ("disabled", "", "false"),
        ("chain", "forward", "forward"),
    ],
)
def test_normalise(field: str, value: str, canonical: str) -> None:
    assert normalise(field, value) == canonical
