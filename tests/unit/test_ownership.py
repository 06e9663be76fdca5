"""Ownership: the names the tool writes and how it tells its own router objects from foreign ones.

The names are the compatibility contract with the earlier Go controller (README, "What it writes
on the router"), so they are pinned here byte for byte.
"""

from __future__ import annotations

import pytest

from sync_job.router.ownership import (
    DEFAULT_PREFIX,
    InvalidPrefix,
    Ownership,
    normalise_address,
)
from sync_job.router.tables import Table

OWN = Ownership()


def test_default_prefix_is_the_go_controllers() -> None:
    assert DEFAULT_PREFIX == "router-policy-sync"
    assert Ownership().prefix == "router-policy-sync"


def test_names_are_the_contract_byte_for_byte() -> None:
    assert OWN.marker_comment == "router-policy-sync::marker"
    assert OWN.address_list("web") == "router-policy-sync::web"
    assert OWN.filter_comment("web", "tcp") == "router-policy-sync::web::tcp"
    assert OWN.nat_comment("web", "udp", 53) == "router-policy-sync::web::udp::53"
    assert OWN.head == "router-policy-sync::"


def test_a_custom_prefix_is_used_in_every_name() -> None:
    own = Ownership("cluster-b")
    assert own.marker_comment == "cluster-b::marker"
    assert own.address_list("web") == "cluster-b::web"
    assert own.filter_comment("web", "tcp") == "cluster-b::web::tcp"
    assert own.nat_comment("web", "tcp", 443) == "cluster-b::web::tcp::443"
    assert own.head == "cluster-b::"


@pytest.mark.parametrize(
    "prefix",
    ["a", "0", "A.b_c-d", "x" * 63, "router-policy-sync", "9lives"],
)
def test_prefixes_kubernetes_and_routeros_can_both_carry_are_accepted(prefix: str) -> None:
    assert Ownership(prefix).prefix == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        "",  # would own every comment that starts with "::"
        "x" * 64,  # longer than 63
        "a:b",  # the separator's character
        "a::",
        "-lead",  # must start with a letter or digit
        ".lead",
        "_lead",
        "with space",
        "tab\tin",
        "trailing-newline\n",  # `$` alone would accept it
        "ünï",
    ],
)
def test_prefixes_that_could_claim_other_names_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidPrefix) as raised:
        Ownership(prefix)
    assert str(raised.value) == (
        f"comment prefix {prefix!r} must be 1-63 letters, digits, '.', '_' or '-' "
        "(no ':'), starting with a letter or digit"
    )


def test_invalid_prefix_is_a_value_error() -> None:
    # cli.py turns ValueErrors of settings into a usage error (exit 64)
    assert issubclass(InvalidPrefix, ValueError)


def test_marker_is_only_the_filter_rule_with_exactly_the_marker_comment() -> None:
    marker = {"comment": "router-policy-sync::marker"}
    assert OWN.is_marker(Table.FILTER, marker)
    assert not OWN.is_marker(Table.NAT, marker)
    assert not OWN.is_marker(Table.ADDRESS_LIST, marker)
    assert not OWN.is_marker(Table.FILTER, {"comment": "router-policy-sync::marker "})
    assert not OWN.is_marker(Table.FILTER, {"comment": "other::marker"})
    assert not OWN.is_marker(Table.FILTER, {})
    assert not Ownership("other").is_marker(Table.FILTER, marker)


def test_name_field_is_list_for_entries_and_comment_for_rules() -> None:
    assert Ownership.name_field(Table.ADDRESS_LIST) == "list"
    assert Ownership.name_field(Table.FILTER) == "comment"
    assert Ownership.name_field(Table.NAT) == "comment"


@pytest.mark.parametrize(
    ("table", "fields", "policy"),
    [
        (Table.FILTER, {"comment": "router-policy-sync::web::tcp"}, "web"),
        (Table.NAT, {"comment": "router-policy-sync::web::tcp::80"}, "web"),
        (Table.NAT, {"comment": "router-policy-sync::a.b::udp::53"}, "a.b"),
        (Table.ADDRESS_LIST, {"list": "router-policy-sync::web", "address": "1.2.3.4"}, "web"),
        # marker-like names only matter for rules: a list may be called that
        (Table.ADDRESS_LIST, {"list": "router-policy-sync::marker"}, "marker"),
        (Table.FILTER, {"comment": "router-policy-sync::" + "a" * 253 + "::tcp"}, "a" * 253),
        # disabled rows are still owned; only dynamic ones are not
        (Table.FILTER, {"comment": "router-policy-sync::web::tcp", "disabled": "true"}, "web"),
        (Table.ADDRESS_LIST, {"list": "router-policy-sync::web", "dynamic": "false"}, "web"),
    ],
)
def test_owner_policy_of_owned_objects(table: Table, fields: dict[str, str], policy: str) -> None:
    assert OWN.owner_policy(table, fields) == policy


@pytest.mark.parametrize(
    ("table", "fields"),
    [
        (Table.FILTER, {"comment": "router-policy-sync::marker"}),  # the user's marker
        # marker-like rules: a near miss a user may have typed, in either table
        (Table.FILTER, {"comment": "router-policy-sync::marker2"}),
        (Table.NAT, {"comment": "router-policy-sync::marker"}),
        # a policy part no Kubernetes object could be named
        (Table.FILTER, {"comment": "router-policy-sync::"}),
        (Table.ADDRESS_LIST, {"list": "router-policy-sync::"}),
        (Table.FILTER, {"comment": "router-policy-sync::Web::tcp"}),
        (Table.NAT, {"comment": "router-policy-sync::my web::tcp::80"}),
        (Table.FILTER, {"comment": "router-policy-sync::" + "a" * 254 + "::tcp"}),
        (Table.FILTER, {"comment": "defconf: accept established"}),
        (Table.FILTER, {}),
        (Table.FILTER, {"comment": "router-policy-sync"}),  # no separator
        (Table.FILTER, {"comment": "router-policy-sync:web"}),
        (Table.FILTER, {"comment": " router-policy-sync::web::tcp"}),
        (Table.FILTER, {"comment": "x-router-policy-sync::web::tcp"}),
        (Table.NAT, {"comment": "cluster-b::web::tcp::80"}),
        # entries are owned by their list, never by their comment
        (Table.ADDRESS_LIST, {"list": "blocklist", "comment": "router-policy-sync::web"}),
        (Table.ADDRESS_LIST, {"address": "1.2.3.4"}),
        # a rule is owned by its comment, never by a list it points at
        (Table.FILTER, {"list": "router-policy-sync::web", "comment": "mine"}),
        # RouterOS's own dynamic rows are never owned, whatever their name says
        (Table.ADDRESS_LIST, {"list": "router-policy-sync::web", "dynamic": "true"}),
        (Table.FILTER, {"comment": "router-policy-sync::web::tcp", "dynamic": "true"}),
    ],
)
def test_foreign_objects_have_no_owner(table: Table, fields: dict[str, str]) -> None:
    assert OWN.owner_policy(table, fields) is None


def test_another_prefix_owns_only_its_own_objects() -> None:
    other = Ownership("cluster-b")
    assert other.owner_policy(Table.NAT, {"comment": "cluster-b::web::tcp::80"}) == "web"
    assert other.owner_policy(Table.NAT, {"comment": "router-policy-sync::web::tcp::80"}) is None
    assert other.owner_policy(Table.FILTER, {"comment": "cluster-b::marker"}) is None


def test_identity_of_an_entry_is_its_list_and_address_without_slash_32() -> None:
    entry = {"list": "router-policy-sync::web", "address": "192.0.2.1/32", "comment": "c"}
    assert OWN.identity(Table.ADDRESS_LIST, entry) == "router-policy-sync::web 192.0.2.1"
    assert OWN.identity(Table.ADDRESS_LIST, {**entry, "address": "192.0.2.1"}) == (
        "router-policy-sync::web 192.0.2.1"
    )
    assert OWN.identity(Table.ADDRESS_LIST, {"address": "192.0.2.1"}) == " 192.0.2.1"
    assert OWN.identity(Table.ADDRESS_LIST, {"list": "l"}) == "l "


def test_identity_of_a_rule_is_its_comment() -> None:
    rule = {"comment": "router-policy-sync::web::tcp", "list": "x", "address": "1.2.3.4"}
    assert OWN.identity(Table.FILTER, rule) == "router-policy-sync::web::tcp"
    assert OWN.identity(Table.NAT, rule) == "router-policy-sync::web::tcp"
    assert OWN.identity(Table.NAT, {}) == ""


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("192.0.2.1/32", "192.0.2.1"),
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.0/24", "192.0.2.0/24"),  # only a single host loses its suffix
        ("192.0.2.1/32/32", "192.0.2.1/32"),
        ("", ""),
    ],
)
def test_normalise_address_drops_only_a_final_slash_32(address: str, normal: str) -> None:
    assert normalise_address(address) == normal


def test_can_own_only_names_that_read_back_as_owned() -> None:
    assert OWN.can_own("web")
    assert OWN.can_own("a.b-c")
    assert not OWN.can_own("marker")
    assert not OWN.can_own("marker-2")
    assert not OWN.can_own("Web")
    assert not OWN.can_own("")
    assert not OWN.can_own("a" * 254)
    assert OWN.can_own("a" * 253)


def test_a_single_marker_outside_forward_is_warned_about() -> None:
    marker = {".id": "*2", "chain": "input", "comment": "router-policy-sync::marker"}
    assert OWN.marker_warnings({Table.FILTER: [{".id": "*1", "chain": "input"}, marker]}) == [
        "the ipv4 marker rule *2 (router-policy-sync::marker) is in chain 'input', not 'forward': "
        "dst-NATed traffic is accepted or dropped in forward, so the rules placed above the "
        "marker may never match it"
    ]


def test_no_marker_warning_in_forward_for_none_or_for_two_markers() -> None:
    marker = {".id": "*2", "chain": "forward", "comment": "router-policy-sync::marker"}
    assert OWN.marker_warnings({Table.FILTER: [marker]}) == []
    assert OWN.marker_warnings({}) == []
    assert OWN.marker_warnings({Table.FILTER: [{"chain": "input", "comment": "x"}]}) == []
    elsewhere = {**marker, "chain": "input"}
    assert OWN.marker_warnings({Table.FILTER: [elsewhere, {**elsewhere, ".id": "*3"}]}) == []
    # a NAT rule with the marker's comment is not the marker
    assert OWN.marker_warnings({Table.NAT: [elsewhere]}) == []


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("2001:DB8::1", "2001:db8::1/128"),
        ("2001:db8:0:0::1/128", "2001:db8::1/128"),
        ("2001:db8::1/64", "2001:db8::/64"),  # host bits cleared (not strict)
        ("!2001:db8::1", "!2001:db8::1/128"),
        ("fe80::1%eth0", "fe80::1%eth0"),  # a zone index is not a stored address
        ("192.0.2.1-192.0.2.1", "192.0.2.1"),
        ("192.0.2.0-192.0.2.255", "192.0.2.0/24"),
        ("192.0.2.1-192.0.2.3", "192.0.2.1-192.0.2.3"),
        ("192.0.2.9/24", "192.0.2.0/24"),
        ("!192.0.2.1/32", "!192.0.2.1"),
        ("192.0.2.1-192.0.2.3-x", "192.0.2.1-192.0.2.3-x"),
        ("host.example/32", "host.example"),
    ],
)
def test_normalise_address_compares_router_rewrites_equal(address: str, normal: str) -> None:
    assert normalise_address(address) == normal
