"""Property-based tests of the planner (hypothesis, derandomized: the same examples every run).

For random desired states (policies with sources, ports and gateways) and random router states
(foreign rules and entries, dynamic rows, owned rows from an older desired state with drifted
fields, duplicates, misplaced and disabled rules, orphans of removed policies, policies frozen
by a failure in this run, the marker anywhere in its chain):

- no foreign object, and no object of a frozen policy, is ever in a plan: not as the row a
  change is about, nor as a move or create destination;
- applying the plan (the real applier, against the RouterOS emulator) and planning again gives
  an empty plan, foreign rows stay byte for byte and in order, and the owned filter rules end
  as one block, in identity order, directly above the marker.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sync_job.model import Action, Family, Gateway, PolicyTarget, ServicePort
from sync_job.router.apply import apply
from sync_job.router.client import RouterSettings, RouterWriter, make_http_client
from sync_job.router.desired import desired_objects
from sync_job.router.ownership import Ownership
from sync_job.router.plan import Plan
from sync_job.router.planner import find_marker, plan_changes
from sync_job.router.tables import Table, tables_of
from sync_job.testing.emulator import RouterOSEmulator

IPV4_TABLES = tables_of([Family.IPV4])

OWN = Ownership()
PASSWORD = "property-test"
EXAMPLES = 400
NAMES = ("a", "b", "web", "db-1", "x.y")
ADDRESSES = tuple(f"198.51.100.{i}" for i in range(1, 9))
PORTS = (("tcp", 80), ("tcp", 443), ("udp", 53), ("sctp", 9), ("tcp", 8080), ("udp", 5000))
GATEWAYS = ("10.0.0.5", "10.0.0.6")
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Row = dict[str, str]

FOREIGN: dict[Table, tuple[Row, ...]] = {
    Table.FILTER: (
        {"chain": "input", "action": "accept", "comment": "defconf: accept established"},
        {"chain": "forward", "action": "drop", "in-interface-list": "WAN"},
        {"chain": "forward", "action": "accept", "comment": "router-policy-syncx::a::tcp"},
        {"chain": "forward", "action": "accept", "comment": "router-policy-sync"},
        {"chain": "forward", "action": "accept", "comment": "router-policy-sync:a::tcp"},
        {"chain": "forward", "action": "accept", "comment": "Router-Policy-Sync::a::tcp"},
        {
            "chain": "forward",
            "action": "accept",
            "protocol": "tcp",
            "dst-port": "80",
            "src-address-list": "router-policy-sync::a",
            "comment": "hand-made, uses our list",
        },
    ),
    Table.NAT: (
        {"chain": "srcnat", "action": "masquerade", "out-interface-list": "WAN"},
        {
            "chain": "dstnat",
            "action": "dst-nat",
            "protocol": "tcp",
            "dst-port": "80",
            "to-addresses": "10.0.0.9",
            "comment": "router-policy-syncx::a::tcp::80",
        },
        {"chain": "dstnat", "action": "dst-nat", "comment": "ssh"},
    ),
    Table.ADDRESS_LIST: (
        {"list": "blocklist", "address": "192.0.2.66"},
        {"list": "router-policy-sync", "address": "198.51.100.1"},
        {"list": "router-policy-syncx::a", "address": "198.51.100.2"},
        {"list": "Router-Policy-Sync::a", "address": "198.51.100.3"},
    ),
}
# Dynamic rules are RouterOS's own, whatever their comment says.
DYNAMIC: dict[Table, tuple[Row, ...]] = {
    Table.FILTER: (
        {"chain": "forward", "action": "passthrough", "comment": "router-policy-sync::a::tcp"},
    ),
    Table.NAT: (
        {"chain": "dstnat", "action": "passthrough", "comment": "router-policy-sync::b::udp::53"},
    ),
    Table.ADDRESS_LIST: (),
}
DRIFT: dict[str, tuple[str, ...]] = {
    "chain": ("forward", "input", "dstnat"),
    "action": ("accept", "drop", "dst-nat", "passthrough"),
    "protocol": ("tcp", "udp", "TCP", "icmp"),
    "dst-port": ("80", "443,80", "80,443", "1-100", ""),
    "src-address-list": ("router-policy-sync::a", "elsewhere"),
    "to-addresses": (*GATEWAYS, "10.0.0.99"),
    "to-ports": ("80", "8081"),
    "disabled": ("true", "yes", "false"),
    "log": ("true",),
}


@st.composite
def targets(draw: st.DrawFn) -> list[PolicyTarget]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    found = []
    for name in names:
        sources = draw(st.lists(st.sampled_from(ADDRESSES), unique=True, max_size=4))
        ports = draw(st.lists(st.sampled_from(PORTS), unique=True, min_size=1, max_size=4))
        gateway = draw(st.sampled_from(GATEWAYS))
        found.append(
            PolicyTarget(
                name,
                tuple(sources),
                Gateway("default", name, gateway, tuple(ServicePort(p, n) for p, n in ports)),
            )
        )
    return found


@st.composite
def owned_rows(draw: st.DrawFn, chain: str) -> dict[Table, list[Row]]:
    """The rows an older desired state left, then edited, duplicated, disabled, dropped."""
    older = draw(targets())
    rows: dict[Table, list[Row]] = {table: [] for table in IPV4_TABLES}
    for obj in desired_objects(older, OWN, {Family.IPV4: draw(st.sampled_from((chain, "input")))}):
        if draw(st.integers(0, 9)) == 0:
            continue  # deleted by hand
        row = dict(obj.fields)
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(sorted(DRIFT)))
            if obj.table is Table.ADDRESS_LIST and name != "disabled":
                continue
            row[name] = draw(st.sampled_from(DRIFT[name]))
        if obj.table is Table.ADDRESS_LIST and draw(st.booleans()):
            row["address"] += "/32"
        rows[obj.table].append(row)
        if draw(st.integers(0, 5)) == 0:  # a duplicate, perhaps disabled
            copy = dict(row)
            if obj.table is Table.ADDRESS_LIST or draw(st.booleans()):
                copy["disabled"] = draw(st.sampled_from(("true", "false")))
            rows[obj.table].append(copy)
    for _ in range(draw(st.integers(0, 2))):  # orphans of policies no longer anywhere
        rows[Table.FILTER].append(
            {"chain": chain, "action": "accept", "comment": "router-policy-sync::gone::tcp"}
        )
        rows[Table.ADDRESS_LIST].append(
            {"list": "router-policy-sync::gone", "address": draw(st.sampled_from(ADDRESSES))}
        )
    rows[Table.NAT].extend(
        {"chain": "dstnat", "comment": "router-policy-sync::"}
        for _ in range(draw(st.integers(0, 1)))
    )
    return rows


@dataclass
class World:
    wanted: list[PolicyTarget]
    chain: str
    frozen: frozenset[str]
    tables: dict[Table, list[Row]]  # in router order, the marker included, dynamic rows first
    dynamic: dict[Table, list[Row]]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    chain = draw(st.sampled_from(("forward", "input")))
    wanted = draw(targets())
    owned = draw(owned_rows(chain))
    # Frozen policies failed this run: they are never wanted, and what they own stays as is.
    candidates = sorted(
        {OWN.owner_policy(t, r) or "" for t, rows in owned.items() for r in rows}
        - {t.name for t in wanted}
    )
    frozen = frozenset(
        draw(st.lists(st.sampled_from(candidates), unique=True)) if candidates else []
    )
    tables: dict[Table, list[Row]] = {}
    for table in IPV4_TABLES:
        foreign = draw(st.lists(st.sampled_from(FOREIGN[table]), unique_by=str))
        rows = [*foreign, *owned[table]]
        if table is Table.FILTER:
            rows.append(
                {
                    "chain": chain,
                    "action": "passthrough",
                    "disabled": "true",
                    "comment": OWN.marker_comment,
                }
            )
        tables[table] = draw(st.permutations(rows))
    dynamic = {
        table: draw(st.lists(st.sampled_from(DYNAMIC[table]), unique_by=str))
        if DYNAMIC[table]
        else []
        for table in IPV4_TABLES
    }
    return World(wanted, chain, frozen, tables, dynamic)


# Fixed examples, always run first whatever hypothesis draws: the router with nothing but the
# marker, and a router holding every hard case at once (a frozen policy's rows, a duplicate, a
# rule below the marker, an orphan, a drifted NAT rule, a dynamic rule, foreign rows that look
# like ours).
MARKER_ROW: Row = {"chain": "forward", "action": "passthrough", "disabled": "true",
                   "comment": OWN.marker_comment}  # fmt: skip
WEB = PolicyTarget(
    "web",
    ("198.51.100.1", "198.51.100.2"),
    Gateway("default", "web", "10.0.0.5", (ServicePort("tcp", 80), ServicePort("udp", 53))),
)
EMPTY_WORLD = World([], "forward", frozenset(), {Table.FILTER: [MARKER_ROW], Table.NAT: [],
                    Table.ADDRESS_LIST: []}, {t: [] for t in IPV4_TABLES})  # fmt: skip
HARD_WORLD = World(
    [WEB],
    "forward",
    frozenset({"db-1"}),
    {
        Table.FILTER: [
            FOREIGN[Table.FILTER][2],
            {"chain": "forward", "action": "accept", "comment": "router-policy-sync::db-1::tcp",
             "protocol": "tcp", "dst-port": "5432"},
            {"chain": "forward", "action": "accept", "comment": "router-policy-sync::gone::tcp"},
            MARKER_ROW,
            {"chain": "forward", "action": "accept", "protocol": "tcp", "dst-port": "80",
             "src-address-list": "router-policy-sync::web",
             "comment": "router-policy-sync::web::tcp"},
            FOREIGN[Table.FILTER][1],
        ],
        Table.NAT: [
            FOREIGN[Table.NAT][1],
            {"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "80",
             "src-address-list": "router-policy-sync::web", "to-addresses": "10.0.0.99",
             "to-ports": "80", "comment": "router-policy-sync::web::tcp::80"},
        ],
        Table.ADDRESS_LIST: [
            {"list": "router-policy-sync::web", "address": "198.51.100.1"},
            {"list": "router-policy-sync::web", "address": "198.51.100.1/32", "disabled": "true"},
            {"list": "router-policy-sync::db-1", "address": "198.51.100.7"},
            FOREIGN[Table.ADDRESS_LIST][2],
        ],
    },
    {Table.FILTER: list(DYNAMIC[Table.FILTER]), Table.NAT: [], Table.ADDRESS_LIST: []},
)  # fmt: skip


def load(world: World) -> RouterOSEmulator:
    emulator = RouterOSEmulator("admin", PASSWORD)
    for table in IPV4_TABLES:
        for row in world.dynamic[table]:
            emulator.seed(table.value, row, dynamic=True)
        for row in world.tables[table]:
            emulator.seed(table.value, row)
    return emulator


def writer(emulator: RouterOSEmulator) -> tuple[RouterWriter, Any]:
    config = RouterSettings("https://router.invalid/rest", "admin", PASSWORD, read_attempts=1)
    http = make_http_client(config, transport=emulator.transport())
    return RouterWriter(http, config, sleep=lambda _: None, rng=random.Random(0)), http


def make_plan(world: World, tables: Mapping[Table, Sequence[Row]]) -> Plan:
    marker = find_marker(tables[Table.FILTER], OWN)
    wanted = desired_objects(world.wanted, OWN, {Family.IPV4: marker.chain})
    return plan_changes(wanted, tables, OWN, marker, world.frozen)


def is_managed(table: Table, row: Mapping[str, str], frozen: frozenset[str]) -> bool:
    policy = OWN.owner_policy(table, row)
    return policy is not None and policy not in frozen


def foreign_view(emulator: RouterOSEmulator, frozen: frozenset[str]) -> dict[Table, list[Row]]:
    """Every row the plan must not touch, exactly as GET shows it, in router order."""
    return {
        table: [r for r in emulator.rows(table.value) if not is_managed(table, r, frozen)]
        for table in IPV4_TABLES
    }


@SETTINGS
@given(worlds())
@example(EMPTY_WORLD)
@example(HARD_WORLD)
def test_no_foreign_or_frozen_object_is_ever_in_a_plan(world: World) -> None:
    emulator = load(world)
    router, http = writer(emulator)
    with http:
        tables = router.read_tables()
    result = make_plan(world, tables)
    by_id = {row[".id"]: (table, row) for table in IPV4_TABLES for row in tables[table]}
    marker = find_marker(tables[Table.FILTER], OWN)
    for change in result.changes:
        if change.action is Action.CREATE:
            assert is_managed(change.table, change.after, world.frozen), change
            assert OWN.owner_policy(change.table, change.after) in {t.name for t in world.wanted}
        else:
            table, row = by_id[str(change.id)]
            assert table is change.table and is_managed(table, row, world.frozen), change
        if change.destination_id is not None:
            table, row = by_id[change.destination_id]
            assert change.destination_id == marker.id or is_managed(table, row, world.frozen)
    touched = [c.id for c in result.changes if c.id and c.action is not Action.MOVE]
    assert len(touched) == len(set(touched))  # one update or delete per row at most


@SETTINGS
@given(worlds())
@example(EMPTY_WORLD)
@example(HARD_WORLD)
def test_applying_a_plan_then_planning_again_gives_an_empty_plan(world: World) -> None:
    emulator = load(world)
    untouchable = foreign_view(emulator, world.frozen)
    router, http = writer(emulator)
    with http:
        first = make_plan(world, router.read_tables())
        result = apply(first, router)
        assert result.ok, result.failed
        tables = router.read_tables()
    again = make_plan(world, tables)
    assert not again, again.changes
    assert foreign_view(emulator, world.frozen) == untouchable
    # The owned, managed filter rules: one block, in identity order, right above the marker.
    rows = tables[Table.FILTER]
    marker = next(i for i, r in enumerate(rows) if OWN.is_marker(Table.FILTER, r))
    ours = [r["comment"] for r in rows if is_managed(Table.FILTER, r, world.frozen)]
    assert [r.get("comment") for r in rows[marker - len(ours) : marker]] == sorted(ours)
    # Exactly the wanted identities, once each.
    wanted = desired_objects(world.wanted, OWN, {Family.IPV4: world.chain})
    for table in IPV4_TABLES:
        have = [OWN.identity(table, r) for r in tables[table] if is_managed(table, r, world.frozen)]
        assert sorted(have) == sorted(
            OWN.identity(table, o.fields) for o in wanted if o.table is table
        )


def test_the_generator_covers_the_interesting_cases() -> None:
    """The strategies really produce what the properties are about."""
    seen: dict[str, int] = dict.fromkeys(
        ("foreign", "dynamic", "duplicate", "misplaced", "frozen", "drift", "orphan"), 0
    )

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(worlds())
    def survey(world: World) -> None:
        rows = [r for t in IPV4_TABLES for r in world.tables[t]]
        seen["foreign"] += any(
            OWN.owner_policy(t, r) is None
            for t in IPV4_TABLES
            for r in world.tables[t]
            if not OWN.is_marker(t, r)
        )
        seen["dynamic"] += any(world.dynamic.values())
        keys = [
            OWN.identity(t, r)
            for t in IPV4_TABLES
            for r in world.tables[t]
            if OWN.owner_policy(t, r) is not None
        ]
        seen["duplicate"] += len(keys) != len(set(keys))
        filter_rows = world.tables[Table.FILTER]
        marker = next(i for i, r in enumerate(filter_rows) if OWN.is_marker(Table.FILTER, r))
        seen["misplaced"] += any(
            OWN.owner_policy(Table.FILTER, r) is not None for r in filter_rows[marker + 1 :]
        )
        seen["frozen"] += bool(world.frozen)
        seen["drift"] += any("log" in r or r.get("disabled") == "true" for r in rows)
        seen["orphan"] += any("::gone" in str(r) for r in rows)

    survey()
    assert all(count >= 10 for count in seen.values()), seen


def test_a_dynamic_entry_in_an_owned_list_does_not_cause_endless_drift() -> None:
    world = World(
        wanted=[
            PolicyTarget(
                "a",
                ("198.51.100.1",),
                Gateway("default", "a", "10.0.0.5", (ServicePort("tcp", 80),)),
            )
        ],
        chain="forward",
        frozen=frozenset(),
        tables={
            Table.FILTER: [{"chain": "forward", "comment": OWN.marker_comment}],
            Table.NAT: [],
            Table.ADDRESS_LIST: [],
        },
        dynamic={table: [] for table in IPV4_TABLES},
    )
    emulator = load(world)
    entry = {"list": "router-policy-sync::a", "address": "198.51.100.1", "timeout": "1d"}
    emulator.seed(Table.ADDRESS_LIST.value, entry)
    router, http = writer(emulator)
    with http:
        assert apply(make_plan(world, router.read_tables()), router).ok
        assert not make_plan(world, router.read_tables())


def test_a_failed_move_does_not_strand_another_policys_new_rule_above_foreign_rules() -> None:
    """b's rule sits above the user's drops and its move back fails; a's new rule, planned to
    go before b's, must still land directly above the marker, not next to b's stray rule."""
    from sync_job.testing.faults import Faults

    world = World(
        wanted=[
            PolicyTarget(
                name,
                ("198.51.100.1",),
                Gateway("default", name, "10.0.0.5", (ServicePort("tcp", 80),)),
            )
            for name in ("a", "b")
        ],
        chain="forward",
        frozen=frozenset(),
        tables={
            Table.FILTER: [
                {
                    "chain": "forward",
                    "action": "accept",
                    "protocol": "tcp",
                    "dst-port": "80",
                    "src-address-list": "router-policy-sync::b",
                    "comment": "router-policy-sync::b::tcp",
                },
                {"chain": "forward", "action": "drop", "comment": "defconf: drop invalid"},
                {"chain": "forward", "action": "drop", "comment": "user: drop blocklist"},
                {"chain": "forward", "comment": OWN.marker_comment},
            ],
            Table.NAT: [],
            Table.ADDRESS_LIST: [],
        },
        dynamic={table: [] for table in IPV4_TABLES},
    )
    emulator = load(world)
    Faults(emulator).fail_nth(1, 400, "failure: refused", methods={"POST"})
    router, http = writer(emulator)
    with http:
        changes = make_plan(world, router.read_tables()).changes
        result = apply(make_plan(world, router.read_tables()), router)
    assert [c.action for c in changes if c.table is Table.FILTER] == [Action.MOVE, Action.CREATE]
    assert result.failed_policies.keys() == {"b"}
    comments = [row.get("comment") for row in emulator.rows(Table.FILTER.value)]
    assert comments == [
        "router-policy-sync::b::tcp",  # b failed: it stays where it was
        "defconf: drop invalid",
        "user: drop blocklist",
        "router-policy-sync::a::tcp",  # a: directly above the marker all the same
        OWN.marker_comment,
    ]
