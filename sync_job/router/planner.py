"""The pure planner: (desired rows, router tables as read) -> Plan. No I/O, no clock.

Objects are matched by identity (comment for rules, list + address for entries), and only the
fields the tool manages are compared, after normalising RouterOS strings. The scope fields of
`--wan-interface-list` are managed whether or not the flag is set: one the desired row lacks is
planned as an update to `""`, which the client sends as RouterOS's unset. Foreign objects are
never in a plan; owned objects of a policy that failed this run (`frozen`) are left exactly as
they are. Owned filter rules are kept as one contiguous block directly above the marker, in
identity order, using as few `move`s as the current order allows. Each IP family is planned on
its own tables with its own marker (`/ip/firewall` and `/ipv6/firewall`), IPv4 first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from sync_job.model import Action, Family, PolicyTarget
from sync_job.router.desired import SCOPE_FIELDS, desired_objects
from sync_job.router.order import order_changes
from sync_job.router.ownership import Ownership, normalise_address
from sync_job.router.plan import Change, Plan
from sync_job.router.tables import RouterObject, Table

Row = Mapping[str, str]
Tables = Mapping[Table, Sequence[Row]]


class MarkerError(Exception):
    """A family's marker rule is missing or not unique, so none of its filter rules can be
    placed."""

    def __init__(self, message: str, family: Family = Family.IPV4) -> None:
        super().__init__(message)
        self.family = family


@dataclass(frozen=True, slots=True)
class Marker:
    id: str
    chain: str
    comment: str


def find_marker(
    filter_rows: Sequence[Row], ownership: Ownership, family: Family = Family.IPV4
) -> Marker:
    table = Table.of(family, "filter")
    found = [row for row in filter_rows if ownership.is_marker(table, row)]
    menu = "/ip firewall filter" if family is Family.IPV4 else "/ipv6 firewall filter"
    which = "" if family is Family.IPV4 else "IPv6 "
    how_to = (
        f"create it on the router above your final drop rule, e.g. `{menu} add "
        f'chain=forward action=passthrough disabled=yes comment="{ownership.marker_comment}" '
        "place-before=<id of the drop rule>`"
    )
    if not found:
        raise MarkerError(
            f"no {which}filter rule with comment {ownership.marker_comment!r}: {how_to}", family
        )
    if len(found) > 1:
        ids = ", ".join(row.get(".id", "?") for row in found)
        raise MarkerError(
            f"{len(found)} {which}filter rules ({ids}) have comment "
            f"{ownership.marker_comment!r}; keep exactly one",
            family,
        )
    return Marker(found[0][".id"], found[0].get("chain", ""), ownership.marker_comment)


def normalise(name: str, value: str) -> str:
    """The canonical form of one managed RouterOS value, so that every recorded way a router
    rewrites it (docs/routeros-lab-cases.md) compares equal to what was written.

    Ports: a set (order, spaces and repeats do not matter; a router keeps the order it was
    given, case 13). Addresses: `normalise_address` (`/32`, `/128`, IPv6 case and compression,
    cases 1, 2, 9, 30). Protocol: lower case, and the numbers of the port protocols as their
    names (whether `6` reads back as `tcp` is UNKNOWN, case 15). Booleans: `yes`/`no` as
    `true`/`false`, and an absent `disabled` is `false` (cases 16, 17).
    """
    if name in ("dst-port", "to-ports"):
        parts = {part.strip() for part in value.split(",") if part.strip()}
        return ",".join(sorted(parts, key=lambda part: (len(part.split("-")[0]), part)))
    if name in ("address", "src-address", "dst-address", "to-addresses", "to-address"):
        return normalise_address(value)
    if name == "protocol":
        numbers = {"6": "tcp", "17": "udp", "33": "dccp", "132": "sctp", "136": "udp-lite"}
        return numbers.get(value, value.lower())
    if name == "disabled":
        return "true" if value.lower() in ("true", "yes") else "false"
    return value


def _managed_diff(desired: Row, actual: Row, scope: Sequence[str] = ()) -> dict[str, str]:
    """The fields (with desired values) where the row read differs from the row wanted.

    A `scope` field the desired row lacks is wanted absent, which reads as `""`.
    """
    absent = {name: "" for name in scope if name not in desired}
    wanted = {**desired, **absent, "disabled": "false"}
    return {
        name: value
        for name, value in wanted.items()
        if (current := actual.get(name, "")) != value
        and normalise(name, value) != normalise(name, current)
    }


def _pick_keeper(desired: Row, rows: Sequence[Row], scope: Sequence[str]) -> Row:
    return min(rows, key=lambda row: len(_managed_diff(desired, row, scope)))


def _managed_view(desired: Row, actual: Row, scope: Sequence[str]) -> dict[str, str]:
    names = dict.fromkeys((*desired, *scope, "disabled"))
    return {name: actual[name] for name in names if name in actual}


def _longest_ordered_subsequence(indices: Sequence[int]) -> set[int]:
    """The largest set of `indices` that already appears in increasing order (patience sort)."""
    tails: list[int] = []  # tails[k] = position in `indices` ending the best run of length k+1
    parent: list[int | None] = [None] * len(indices)
    for position, value in enumerate(indices):
        low, high = 0, len(tails)
        while low < high:
            middle = (low + high) // 2
            if indices[tails[middle]] < value:
                low = middle + 1
            else:
                high = middle
        parent[position] = tails[low - 1] if low else None
        if low == len(tails):
            tails.append(position)
        else:
            tails[low] = position
    kept: set[int] = set()
    cursor = tails[-1] if tails else None
    while cursor is not None:
        kept.add(indices[cursor])
        cursor = parent[cursor]
    return kept


class _TablePlanner:
    """Matches one table's desired rows with its owned rows."""

    def __init__(
        self,
        table: Table,
        desired: Sequence[RouterObject],
        rows: Sequence[Row],
        ownership: Ownership,
        frozen: Set[str],
        released: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.table = table
        self.ownership = ownership
        self.scope = SCOPE_FIELDS[table]
        self.desired = {ownership.identity(table, obj.fields): obj.fields for obj in desired}
        self.owned: dict[str, list[Row]] = defaultdict(list)
        self.policy_of: dict[str, str] = {}
        # Owned names all start with this, so the (many) foreign rows are skipped at once.
        head, name_field = ownership.head, ownership.name_field(table)
        # RouterOS's own dynamic entries (timeouts) in an owned list already hold their address:
        # adding it again would be refused as a duplicate, run after run.
        self.dynamic: set[str] = set()
        released_rows: list[tuple[str, Row, str]] = []
        for row in rows:
            if not row.get(name_field, "").startswith(head):
                continue
            policy = ownership.owner_policy(table, row)
            if policy is None and table.is_address_list and row.get("dynamic") == "true":
                self.dynamic.add(ownership.identity(table, row))
            if policy is not None and policy in frozen:
                reason = _released_reason(table, row, (released or {}).get(policy, {}))
                if reason is not None:
                    released_rows.append((ownership.identity(table, row), row, reason))
                continue
            if policy is None:
                continue
            key = ownership.identity(table, row)
            self.owned[key].append(row)
            self.policy_of[key] = policy
        self.keepers: dict[str, Row] = {}
        self.deletes: list[Change] = [
            self._delete(key, row, reason) for key, row, reason in released_rows
        ]
        self.updates: list[Change] = []
        self._match()

    def _policy(self, key: str, fields: Row) -> str:
        return self.policy_of.get(key) or self.ownership.owner_policy(self.table, fields) or ""

    def _delete(self, key: str, row: Row, reason: str) -> Change:
        return Change(
            action=Action.DELETE,
            table=self.table,
            key=key,
            policy=self._policy(key, row),
            reason=reason,
            id=row[".id"],
            before=dict(row),
        )

    def _match(self) -> None:
        for key, rows in self.owned.items():
            desired = self.desired.get(key)
            if desired is None:
                self.deletes.extend(self._delete(key, row, "no longer wanted") for row in rows)
                continue
            keeper = rows[0] if len(rows) == 1 else _pick_keeper(desired, rows, self.scope)
            self.keepers[key] = keeper
            self.deletes.extend(
                self._delete(key, row, "duplicate") for row in rows if row is not keeper
            )
            diff = _managed_diff(desired, keeper, self.scope)
            if diff:
                self.updates.append(
                    Change(
                        action=Action.UPDATE,
                        table=self.table,
                        key=key,
                        policy=self._policy(key, desired),
                        reason="drift",
                        id=keeper[".id"],
                        before=_managed_view(desired, keeper, self.scope),
                        after=diff,
                    )
                )

    def creates(self) -> list[Change]:
        return [
            Change(
                action=Action.CREATE,
                table=self.table,
                key=key,
                policy=self._policy(key, fields),
                reason="missing",
                after=fields,
            )
            for key, fields in sorted(self.desired.items())
            if key not in self.keepers and key not in self.dynamic
        ]


# The field that points a rule at its gateway, where the address alone decides who is reached:
# the IPv4 NAT target, and the IPv6 accept rule's destination (there is no IPv6 NAT).
_GATEWAY_FIELD = {Table.NAT: "to-addresses", Table.IPV6_FILTER: "dst-address"}


def _released_reason(table: Table, row: Row, released: Mapping[str, str]) -> str | None:
    """Why a frozen policy's rule must go: it points at an address now another Service's."""
    name = _GATEWAY_FIELD.get(table)
    if name is None or not released or not row.get(name):
        return None
    target = normalise_address(row[name])
    return next(
        (why for address, why in released.items() if normalise_address(address) == target),
        None,
    )


def _place_filter_rules(
    planner: _TablePlanner, rows: Sequence[Row], marker: Marker, ownership: Ownership
) -> list[Change]:
    """Creates and moves that leave the wanted filter rules in identity order above the marker.

    Rules already in the run directly above the marker (bounded by the first foreign, dynamic or
    frozen rule) keep their place when they are in order; every other rule is placed, last to
    first, directly before its successor, so a correct block costs nothing and a first run only
    creates.
    """
    deleted = {change.id for change in planner.deletes}
    remaining = [row for row in rows if row.get(".id") not in deleted]
    block = sorted(planner.desired)
    order = {key: index for index, key in enumerate(block)}
    marker_index = next(i for i, row in enumerate(remaining) if row.get(".id") == marker.id)
    region: list[int] = []
    for row in reversed(remaining[:marker_index]):
        key = ownership.identity(planner.table, row)
        if planner.keepers.get(key) is not row:
            break
        region.append(order[key])
    kept = _longest_ordered_subsequence(region[::-1])

    changes: list[Change] = []
    successor: str = marker.comment
    successor_id: str | None = marker.id
    for index in range(len(block) - 1, -1, -1):
        key = block[index]
        keeper = planner.keepers.get(key)
        if index in kept and keeper is not None:
            successor, successor_id = key, keeper[".id"]
            continue
        fields = planner.desired[key]
        policy = planner._policy(key, fields)
        if keeper is None:
            change = Change(
                action=Action.CREATE, table=planner.table, key=key, policy=policy,
                reason="missing", after=fields,
                destination=successor, destination_id=successor_id,
            )  # fmt: skip
            successor_id = None
        else:
            change = Change(
                action=Action.MOVE, table=planner.table, key=key, policy=policy,
                reason="not directly above the marker",
                id=keeper[".id"], destination=successor, destination_id=successor_id,
            )  # fmt: skip
            successor_id = keeper[".id"]
        successor = key
        changes.append(change)
    return changes


def plan_changes(
    desired: Iterable[RouterObject],
    tables: Tables,
    ownership: Ownership,
    marker: Marker,
    frozen: Set[str] = frozenset(),
    released: Mapping[str, Mapping[str, str]] | None = None,
    family: Family = Family.IPV4,
) -> Plan:
    """Everything that must change for the router to hold exactly `desired` of what it owns,
    in the tables of `family` (desired rows of other tables are ignored).

    `frozen` names policies whose owned objects must stay exactly as they are (their sync
    failed in this run); `released` (policy -> {address: why}) is the one exception: a frozen
    policy's NAT rules to such an address are deleted, as it now belongs to another Service.
    Execution order: address-list entries of wanted lists first, then rule
    deletes, rule updates, filter creates and moves, NAT creates, and last the entries of lists
    no policy wants, so a rule never points at a list that is being emptied under it.
    `order.order_changes` then sends removals first and each policy's writes together.
    """
    filter_table = Table.of(family, "filter")
    list_table, nat_table = Table.of(family, "address-list"), Table.of(family, "nat")
    by_table: dict[Table, list[RouterObject]] = defaultdict(list)
    for obj in desired:
        by_table[obj.table].append(obj)
    planners = {
        table: _TablePlanner(
            table, by_table[table], tables.get(table, ()), ownership, frozen, released
        )
        for table in (list_table, nat_table, filter_table)
    }
    entries, nat, rules = planners[list_table], planners[nat_table], planners[filter_table]
    wanted_lists = {obj.fields["list"] for obj in by_table[list_table]}
    wanted_lists |= {
        ownership.address_list(ownership.owner_policy(filter_table, obj.fields) or "")
        for obj in (*by_table[filter_table], *by_table[nat_table])
    }

    def in_wanted_list(change: Change) -> bool:
        return change.before.get("list") in wanted_lists

    changes: list[Change] = [
        *(change for change in entries.deletes if in_wanted_list(change)),
        *entries.updates,
        *entries.creates(),
        *nat.deletes,
        *rules.deletes,
        *rules.updates,
        *nat.updates,
        *_place_filter_rules(rules, tables.get(filter_table, ()), marker, ownership),
        *nat.creates(),
        *(change for change in entries.deletes if not in_wanted_list(change)),
    ]
    return Plan(order_changes(changes))


def plan_router(
    targets: Iterable[PolicyTarget],
    tables: Tables,
    ownership: Ownership,
    frozen: Set[str] = frozenset(),
    *,
    wan_interface_list: str | None = None,
    released: Mapping[str, Mapping[str, str]] | None = None,
    families: Iterable[Family] = (Family.IPV4,),
) -> Plan:
    """The plan for a pass over `families`: each family's marker found, the targets' rows built,
    the changes planned, in `order.order_changes`'s order over both families.

    `wan_interface_list` scopes every owned rule to that interface list (see `desired`).
    Raises MarkerError when a family's marker is missing or ambiguous: then nothing may be
    written (`marker_problems` tells which families to leave out beforehand).
    """
    wanted_families = [family for family in Family if family in set(families)]
    markers = {
        family: find_marker(tables.get(Table.of(family, "filter"), []), ownership, family)
        for family in wanted_families
    }
    chains = {family: marker.chain for family, marker in markers.items()}
    wanted = desired_objects(targets, ownership, chains, wan_interface_list)
    changes: list[Change] = []
    for family, marker in markers.items():
        plan = plan_changes(wanted, tables, ownership, marker, frozen, released, family)
        changes.extend(plan.changes)
    # Across families too: every removal first, then each (dual-stack) policy whole.
    return Plan(order_changes(changes))


def marker_problems(
    tables: Tables, ownership: Ownership, families: Iterable[Family]
) -> dict[Family, MarkerError]:
    """Each family whose marker is missing or not unique, with why."""
    problems: dict[Family, MarkerError] = {}
    for family in families:
        try:
            find_marker(tables.get(Table.of(family, "filter"), []), ownership, family)
        except MarkerError as error:
            problems[family] = error
    return problems
