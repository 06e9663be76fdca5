"""The planner's changes in full: each Change's action, table, key, policy, reason, ids and
bodies, the marker messages, RouterOS's dynamic rows, released NAT rules of a frozen policy,
missing tables and the ordering helper. Complements test_planner.py's scenarios, which mostly
compare actions and keys."""

from __future__ import annotations

import pytest

from sync_job.model import Action, Gateway, PolicyTarget, ServicePort
from sync_job.router.desired import policy_objects
from sync_job.router.ownership import Ownership
from sync_job.router.plan import Change
from sync_job.router.planner import (
    Marker,
    MarkerError,
    _longest_ordered_subsequence,
    find_marker,
    normalise,
    plan_changes,
    plan_router,
)
from sync_job.router.tables import RouterObject, Table

OWN = Ownership()
P = "router-policy-sync"
MARKER = Marker("*M", "forward", f"{P}::marker")
WEB = PolicyTarget(
    "web", ("192.0.2.1",), Gateway("default", "web", "10.0.0.5", (ServicePort("tcp", 80),))
)


def marker_row(**extra: str) -> dict[str, str]:
    return {".id": "*M", "chain": "forward", "comment": f"{P}::marker", **extra}


def wanted(*targets: PolicyTarget) -> list[RouterObject]:
    return [obj for t in targets for obj in policy_objects(t, OWN, "forward")]


def fields(table: Table, key: str, targets: tuple[PolicyTarget, ...] = (WEB,)) -> dict[str, str]:
    for obj in wanted(*targets):
        if obj.table is table and OWN.identity(table, obj.fields) == key:
            return dict(obj.fields)
    raise KeyError(key)


ENTRY = fields(Table.ADDRESS_LIST, f"{P}::web 192.0.2.1")
RULE = fields(Table.FILTER, f"{P}::web::tcp")
NAT = fields(Table.NAT, f"{P}::web::tcp::80")


def converged() -> dict[Table, list[dict[str, str]]]:
    return {
        Table.ADDRESS_LIST: [{".id": "*E", **ENTRY, "disabled": "false"}],
        Table.FILTER: [{".id": "*F", **RULE}, marker_row()],
        Table.NAT: [{".id": "*N", **NAT}],
    }


def test_a_converged_router_needs_nothing() -> None:
    assert not plan_changes(wanted(WEB), converged(), OWN, MARKER)


def test_first_run_creates_carry_key_policy_reason_body_and_destination() -> None:
    plan = plan_changes(wanted(WEB), {Table.FILTER: [marker_row()]}, OWN, MARKER)
    assert plan.changes == (
        Change(
            action=Action.CREATE,
            table=Table.ADDRESS_LIST,
            key=f"{P}::web 192.0.2.1",
            policy="web",
            reason="missing",
            after=ENTRY,
        ),
        Change(
            action=Action.CREATE,
            table=Table.FILTER,
            key=f"{P}::web::tcp",
            policy="web",
            reason="missing",
            after=RULE,
            destination=f"{P}::marker",
            destination_id="*M",
        ),
        Change(
            action=Action.CREATE,
            table=Table.NAT,
            key=f"{P}::web::tcp::80",
            policy="web",
            reason="missing",
            after=NAT,
        ),
    )


def test_missing_tables_read_as_empty() -> None:
    with pytest.raises(MarkerError):
        plan_router([WEB], {}, OWN)


def test_two_filter_rules_are_created_last_first_each_before_the_next() -> None:
    both = PolicyTarget(
        "web", (), Gateway("d", "w", "10.0.0.5", (ServicePort("tcp", 80), ServicePort("udp", 53)))
    )
    plan = plan_changes(wanted(both), {Table.FILTER: [marker_row()]}, OWN, MARKER)
    rules = [c for c in plan.changes if c.table is Table.FILTER]
    assert [(c.key, c.destination, c.destination_id) for c in rules] == [
        (f"{P}::web::udp", f"{P}::marker", "*M"),
        (f"{P}::web::tcp", f"{P}::web::udp", None),
    ]


def test_drift_is_an_update_of_only_the_differing_fields_with_their_old_values() -> None:
    tables = converged()
    tables[Table.NAT][0].update({"to-addresses": "10.0.0.4", "disabled": "true", "log": "yes"})
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert plan.changes == (
        Change(
            action=Action.UPDATE,
            table=Table.NAT,
            key=f"{P}::web::tcp::80",
            policy="web",
            reason="drift",
            id="*N",
            # the managed fields as read: the user's `log` is not among them
            before={**NAT, "to-addresses": "10.0.0.4", "disabled": "true"},
            after={"to-addresses": "10.0.0.5", "disabled": "false"},
        ),
    )


def test_a_disabled_entry_is_enabled_with_the_exact_value_false() -> None:
    tables = converged()
    tables[Table.ADDRESS_LIST][0]["disabled"] = "yes"
    (change,) = plan_changes(wanted(WEB), tables, OWN, MARKER).changes
    assert change.after == {"disabled": "false"}
    assert change.before == {**ENTRY, "disabled": "yes"}


def test_an_unwanted_owned_object_is_deleted_with_its_own_policy() -> None:
    tables = converged()
    old = {".id": "*O", "comment": f"{P}::old::tcp::22", "to-ports": "22"}
    tables[Table.NAT].append(old)
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert plan.changes == (
        Change(
            action=Action.DELETE,
            table=Table.NAT,
            key=f"{P}::old::tcp::22",
            policy="old",
            reason="no longer wanted",
            id="*O",
            before=old,
        ),
    )


def test_a_duplicate_is_deleted_and_the_closest_row_kept() -> None:
    tables = converged()
    worse = {".id": "*D", **NAT, "to-ports": "81", "disabled": "true"}
    tables[Table.NAT].insert(0, worse)
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert plan.changes == (
        Change(
            action=Action.DELETE,
            table=Table.NAT,
            key=f"{P}::web::tcp::80",
            policy="web",
            reason="duplicate",
            id="*D",
            before=worse,
        ),
    )


def test_a_duplicate_rule_in_the_block_costs_no_move() -> None:
    tables = converged()
    tables[Table.FILTER].insert(1, {".id": "*F2", **RULE, "disabled": "true"})
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert [(c.action, c.id) for c in plan.changes] == [(Action.DELETE, "*F2")]


def test_a_rule_away_from_the_marker_is_moved_with_its_policy_and_destination() -> None:
    tables = converged()
    tables[Table.FILTER] = [
        {".id": "*F", **RULE},
        {".id": "*X", "comment": "foreign"},
        marker_row(),
    ]
    assert plan_changes(wanted(WEB), tables, OWN, MARKER).changes == (
        Change(
            action=Action.MOVE,
            table=Table.FILTER,
            key=f"{P}::web::tcp",
            policy="web",
            reason="not directly above the marker",
            id="*F",
            destination=f"{P}::marker",
            destination_id="*M",
        ),
    )


def test_a_rule_placed_before_a_moved_rule_gets_that_rules_id() -> None:
    both = PolicyTarget(
        "web", (), Gateway("d", "w", "10.0.0.5", (ServicePort("tcp", 80), ServicePort("udp", 53)))
    )
    tcp = fields(Table.FILTER, f"{P}::web::tcp", (both,))
    udp = fields(Table.FILTER, f"{P}::web::udp", (both,))
    tables = {
        Table.FILTER: [
            {".id": "*U", **udp},
            {".id": "*T", **tcp},
            {".id": "*X", "comment": "foreign"},
            marker_row(),
        ]
    }
    plan = plan_changes(wanted(both), tables, OWN, MARKER)
    moves = [
        (c.key, c.id, c.destination, c.destination_id)
        for c in plan.changes
        if c.table is Table.FILTER
    ]
    assert moves == [
        (f"{P}::web::udp", "*U", f"{P}::marker", "*M"),
        (f"{P}::web::tcp", "*T", f"{P}::web::udp", "*U"),
    ]


def test_a_dynamic_entry_in_an_owned_list_is_never_created_again() -> None:
    tables = converged()
    tables[Table.ADDRESS_LIST] = [{".id": "*E", **ENTRY, "dynamic": "true"}]
    assert not plan_changes(wanted(WEB), tables, OWN, MARKER)


@pytest.mark.parametrize("dynamic", ["false", "yes", "TRUE", ""])
def test_only_dynamic_true_marks_an_entry_as_routeros_own(dynamic: str) -> None:
    tables = converged()
    tables[Table.ADDRESS_LIST] = [{".id": "*E", **ENTRY, "dynamic": dynamic}]
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert all(c.action is not Action.CREATE for c in plan.changes)


def test_a_dynamic_entry_of_another_address_or_foreign_list_does_not_hide_a_create() -> None:
    tables = converged()
    tables[Table.ADDRESS_LIST] = [
        {".id": "*E1", "list": f"{P}::web", "address": "192.0.2.9", "dynamic": "true"},
        {".id": "*E2", "list": "other", "address": "192.0.2.1", "dynamic": "true"},
    ]
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert [(c.action, c.key) for c in plan.changes] == [(Action.CREATE, f"{P}::web 192.0.2.1")]


def test_a_dynamic_rule_with_an_owned_comment_does_not_hide_the_rule() -> None:
    tables = converged()
    tables[Table.FILTER] = [{".id": "*D", **RULE, "dynamic": "true"}, marker_row()]
    tables[Table.NAT] = [{".id": "*DN", **NAT, "dynamic": "true"}]
    plan = plan_changes(wanted(WEB), tables, OWN, MARKER)
    assert [(c.action, c.table) for c in plan.changes] == [
        (Action.CREATE, Table.FILTER),
        (Action.CREATE, Table.NAT),
    ]


def test_a_frozen_policys_objects_stay_and_are_not_recreated() -> None:
    tables = converged()
    tables[Table.NAT][0]["to-addresses"] = "10.0.0.4"
    assert not plan_changes([], tables, OWN, MARKER, frozen={"web"})


def test_released_nat_rules_of_a_frozen_policy_are_deleted_with_the_reason_given() -> None:
    tables = converged()
    tables[Table.NAT][0]["to-addresses"] = "10.0.0.4"
    other = {".id": "*N2", **NAT, "comment": f"{P}::web::tcp::81", "to-addresses": "10.0.0.7"}
    tables[Table.NAT].append(other)
    released = {"web": {"10.0.0.4": "10.0.0.4 now belongs to Service x/y"}}
    plan = plan_changes([], tables, OWN, MARKER, frozen={"web"}, released=released)
    assert plan.changes == (
        Change(
            action=Action.DELETE,
            table=Table.NAT,
            key=f"{P}::web::tcp::80",
            policy="web",
            reason="10.0.0.4 now belongs to Service x/y",
            id="*N",
            before=tables[Table.NAT][0],
        ),
    )
    # released only applies to frozen policies' NAT rules
    assert not plan_changes([], tables, OWN, MARKER, frozen={"web"}, released={"dns": {}})
    unfrozen = plan_changes(wanted(WEB), tables, OWN, MARKER, released=released)
    assert {c.reason for c in unfrozen.changes} == {"drift", "no longer wanted"}


def test_released_never_deletes_entries_or_filter_rules() -> None:
    tables = converged()
    tables[Table.FILTER][0]["to-addresses"] = "10.0.0.4"
    tables[Table.ADDRESS_LIST][0]["to-addresses"] = "10.0.0.4"
    tables[Table.NAT][0]["to-addresses"] = "10.0.0.6"
    released = {"web": {"10.0.0.4": "gone"}}
    assert not plan_changes([], tables, OWN, MARKER, frozen={"web"}, released=released)


def test_stale_entries_of_a_list_a_rule_still_uses_go_first_others_last() -> None:
    nosources = PolicyTarget("web", (), WEB.gateway)
    tables = converged()
    tables[Table.ADDRESS_LIST].append(
        {".id": "*G", "list": f"{P}::gone", "address": "192.0.2.2", "disabled": "false"}
    )
    tables[Table.NAT][0]["to-ports"] = "81"
    plan = plan_changes(wanted(nosources), tables, OWN, MARKER)
    assert [(c.action, c.id) for c in plan.changes] == [
        (Action.DELETE, "*E"),  # web's list is still used by its rules: emptied first
        (Action.DELETE, "*G"),  # nothing uses gone's list: after it (removals before creates)
        (Action.UPDATE, "*N"),
    ]


def test_plan_router_uses_the_markers_chain_and_passes_frozen_and_released() -> None:
    tables = converged()
    tables[Table.FILTER][1]["chain"] = "wan-in"
    plan = plan_router([WEB], tables, OWN)
    assert [(c.action, c.after) for c in plan.changes] == [(Action.UPDATE, {"chain": "wan-in"})]
    tables = converged()
    tables[Table.NAT][0]["to-addresses"] = "10.0.0.4"
    assert not plan_router([], tables, OWN, frozenset({"web"}))
    released = {"web": {"10.0.0.4": "why"}}
    plan = plan_router([], tables, OWN, frozenset({"web"}), released=released)
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.DELETE, "why")]


def test_plan_router_scopes_rules_to_the_wan_interface_list() -> None:
    plan = plan_router([WEB], converged(), OWN, wan_interface_list="WAN")
    nat = [c for c in plan.changes if c.table is Table.NAT]
    assert [c.after for c in nat] == [{"in-interface-list": "WAN"}]


def test_marker_messages_say_how_to_fix_it() -> None:
    with pytest.raises(MarkerError) as missing:
        find_marker([{".id": "*1", "comment": "defconf"}], OWN)
    assert str(missing.value) == (
        f"no filter rule with comment '{P}::marker': create it on the router above your final "
        "drop rule, e.g. `/ip firewall filter add chain=forward action=passthrough disabled=yes "
        f'comment="{P}::marker" place-before=<id of the drop rule>`'
    )
    with pytest.raises(MarkerError) as twice:
        find_marker([marker_row(), {"comment": f"{P}::marker"}], OWN)
    assert str(twice.value) == (
        f"2 filter rules (*M, ?) have comment '{P}::marker'; keep exactly one"
    )


def test_the_marker_found_carries_its_id_chain_and_comment() -> None:
    own = Ownership("b")
    assert find_marker([{".id": "*9", "comment": "b::marker"}], own) == Marker(
        "*9", "", "b::marker"
    )
    assert find_marker([marker_row(chain="input")], OWN) == Marker("*M", "input", f"{P}::marker")


@pytest.mark.parametrize("name", ["dst-port", "to-ports"])
def test_port_lists_compare_sorted_and_trimmed(name: str) -> None:
    assert normalise(name, " 443,80,, 8000-8100") == "80,443,8000-8100"


def test_other_values_compare_as_routeros_stores_them() -> None:
    assert normalise("address", "192.0.2.1/32") == "192.0.2.1"
    assert normalise("dst-address", "10.0.0.5/32") == "10.0.0.5"
    assert normalise("protocol", "TCP") == "tcp"
    assert normalise("disabled", "yes") == "true"
    assert normalise("disabled", "no") == "false"
    assert normalise("comment", " A,B ") == " A,B "


@pytest.mark.parametrize(
    ("indices", "kept"),
    [
        ([], set()),
        ([0], {0}),
        ([0, 1, 2, 3], {0, 1, 2, 3}),
        ([3, 2, 1, 0], {0}),
        ([2, 0, 1, 3], {0, 1, 3}),
        ([4, 0, 1, 5, 2, 3], {0, 1, 2, 3}),
        ([1, 0, 3, 2, 5, 4, 7, 6], {0, 2, 4, 6}),
        ([9, 1, 8, 2, 7, 3, 6, 4, 5], {1, 2, 3, 4, 5}),
    ],
)
def test_longest_ordered_subsequence_keeps_the_most_rules_in_place(
    indices: list[int], kept: set[int]
) -> None:
    assert _longest_ordered_subsequence(indices) == kept


def test_stale_entries_of_a_policy_without_ports_go_first_too() -> None:
    # its list has entries wanted but no rule: it is still a wanted list
    portless = PolicyTarget("web", ("192.0.2.1",), Gateway("d", "w", "10.0.0.5", ()))
    tables = converged()
    tables[Table.ADDRESS_LIST].append(
        {".id": "*S", "list": f"{P}::web", "address": "192.0.2.2", "disabled": "false"}
    )
    tables[Table.ADDRESS_LIST].append(
        {".id": "*G", "list": f"{P}::gone", "address": "192.0.2.2", "disabled": "false"}
    )
    dns = {".id": "*O", "comment": f"{P}::dns::udp::53"}
    tables[Table.NAT].append(dns)
    plan = plan_changes(wanted(portless), tables, OWN, MARKER)
    assert [(c.action, c.id) for c in plan.changes] == [
        (Action.DELETE, "*N"),  # removals: every rule first, then the entries
        (Action.DELETE, "*O"),
        (Action.DELETE, "*F"),
        (Action.DELETE, "*S"),  # a wanted list's stale entry before an unwanted list's
        (Action.DELETE, "*G"),
    ]


@pytest.mark.parametrize(
    ("number", "name"),
    [("6", "tcp"), ("17", "udp"), ("33", "dccp"), ("132", "sctp"), ("136", "udp-lite")],
)
def test_protocol_numbers_compare_as_their_routeros_names(number: str, name: str) -> None:
    assert normalise("protocol", number) == name
    assert normalise("protocol", name.upper()) == name
