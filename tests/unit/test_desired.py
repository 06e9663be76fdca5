"""Desired rows: a PolicyTarget translated into exactly the router rows the README's contract lists
(README, "What it writes on the router"), field by field and in order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sync_job.model import Family, Gateway, PolicyTarget, ServicePort
from sync_job.router.desired import SCOPE_FIELDS, desired_objects, policy_objects, policy_objects6
from sync_job.router.ownership import Ownership
from sync_job.router.tables import RouterObject, Table

OWN = Ownership()
V4 = {Family.IPV4: "forward"}
LIST = "router-policy-sync::web"
WEB = PolicyTarget(
    "web",
    ("203.0.113.10", "198.51.100.5"),
    Gateway(
        "default",
        "web",
        "10.0.0.5",
        # unsorted, with a repeated port: rows come out sorted and once per port
        (
            ServicePort("udp", 53),
            ServicePort("tcp", 443),
            ServicePort("tcp", 80),
            ServicePort("tcp", 443),
        ),
    ),
)


def _nat(protocol: str, port: int, **extra: str) -> RouterObject:
    return RouterObject(
        Table.NAT,
        {
            "chain": "dstnat",
            "action": "dst-nat",
            "protocol": protocol,
            "dst-port": str(port),
            "src-address-list": LIST,
            "to-addresses": "10.0.0.5",
            "to-ports": str(port),
            **extra,
            "comment": f"router-policy-sync::web::{protocol}::{port}",
        },
    )


def _filter(protocol: str, ports: str, chain: str = "forward", **extra: str) -> RouterObject:
    return RouterObject(
        Table.FILTER,
        {
            "chain": chain,
            "action": "accept",
            "protocol": protocol,
            "dst-port": ports,
            "src-address-list": LIST,
            **extra,
            "comment": f"router-policy-sync::web::{protocol}",
        },
    )


def test_entries_then_per_protocol_a_filter_rule_and_its_nat_rules() -> None:
    assert policy_objects(WEB, OWN, "forward") == [
        RouterObject(Table.ADDRESS_LIST, {"list": LIST, "address": "203.0.113.10"}),
        RouterObject(Table.ADDRESS_LIST, {"list": LIST, "address": "198.51.100.5"}),
        _filter("tcp", "80,443"),
        _nat("tcp", 80),
        _nat("tcp", 443),
        _filter("udp", "53"),
        _nat("udp", 53),
    ]


def test_field_order_is_the_contracts() -> None:
    # RouterOS shows fields in the order they were sent; the text plan prints them in this order
    rows = policy_objects(WEB, OWN, "forward")
    assert list(rows[2].fields) == [
        "chain",
        "action",
        "protocol",
        "dst-port",
        "src-address-list",
        "comment",
    ]
    assert list(rows[3].fields) == [
        "chain",
        "action",
        "protocol",
        "dst-port",
        "src-address-list",
        "to-addresses",
        "to-ports",
        "comment",
    ]


def test_the_filter_chain_is_the_markers() -> None:
    rules = [o for o in policy_objects(WEB, OWN, "wan-in") if o.table is Table.FILTER]
    assert [rule.fields["chain"] for rule in rules] == ["wan-in", "wan-in"]
    nat = [o for o in policy_objects(WEB, OWN, "wan-in") if o.table is Table.NAT]
    assert {rule.fields["chain"] for rule in nat} == {"dstnat"}


def test_a_custom_prefix_names_list_and_comments() -> None:
    rows = policy_objects(WEB, Ownership("b"), "forward")
    assert rows[0].fields["list"] == "b::web"
    assert rows[2].fields["src-address-list"] == "b::web"
    assert rows[2].fields["comment"] == "b::web::tcp"
    assert rows[3].fields["comment"] == "b::web::tcp::80"


def test_no_sources_still_makes_the_rules_and_no_ports_makes_only_entries() -> None:
    empty = PolicyTarget("web", (), WEB.gateway)
    assert [o.table for o in policy_objects(empty, OWN, "forward")] == [
        Table.FILTER,
        Table.NAT,
        Table.NAT,
        Table.FILTER,
        Table.NAT,
    ]
    portless = PolicyTarget("web", ("203.0.113.10",), Gateway("d", "w", "10.0.0.5", ()))
    assert policy_objects(portless, OWN, "forward") == [
        RouterObject(Table.ADDRESS_LIST, {"list": LIST, "address": "203.0.113.10"})
    ]


def test_ports_are_sorted_as_numbers() -> None:
    target = PolicyTarget(
        "web",
        (),
        Gateway("d", "w", "10.0.0.5", tuple(ServicePort("tcp", p) for p in (8080, 9, 80))),
    )
    rows = policy_objects(target, OWN, "forward")
    assert rows[0].fields["dst-port"] == "9,80,8080"
    assert [row.fields["dst-port"] for row in rows[1:]] == ["9", "80", "8080"]


def test_wan_interface_list_scopes_nat_to_it_and_filter_to_dstnatted_gateway_traffic() -> None:
    rows = policy_objects(WEB, OWN, "forward", "WAN")
    assert rows[2] == _filter(
        "tcp",
        "80,443",
        **{"in-interface-list": "WAN", "connection-nat-state": "dstnat", "dst-address": "10.0.0.5"},
    )
    assert rows[3] == _nat("tcp", 80, **{"in-interface-list": "WAN"})
    assert rows[0].fields == {"list": LIST, "address": "203.0.113.10"}


def test_no_or_empty_wan_interface_list_adds_no_scope() -> None:
    assert policy_objects(WEB, OWN, "forward", "") == policy_objects(WEB, OWN, "forward")
    assert policy_objects(WEB, OWN, "forward", None) == policy_objects(WEB, OWN, "forward")


@pytest.mark.parametrize("make", [policy_objects, policy_objects6])
def test_scope_fields_are_what_the_wan_option_adds(make: Any) -> None:
    target = replace(WEB, sources=(*WEB.sources, "2001:db8::7/128"),
                     gateway=replace(WEB.gateway, ip6="2001:db8:1::5"))  # fmt: skip
    rows = make(target, OWN, "forward", "WAN")
    plain = make(target, OWN, "forward")
    for table in {row.table for row in rows}:
        added = {
            name
            for row, base in zip(rows, plain, strict=True)
            if row.table is table
            for name in row.fields
            if name not in base.fields
        }
        assert added == set(SCOPE_FIELDS[table]), table


def test_desired_objects_concatenates_targets_in_order() -> None:
    dns = PolicyTarget("dns", ("192.0.2.7",), Gateway("i", "d", "10.0.0.6", ()))
    assert list(desired_objects([WEB, dns], OWN, V4)) == [
        *policy_objects(WEB, OWN, "forward"),
        *policy_objects(dns, OWN, "forward"),
    ]
    assert list(desired_objects([WEB], OWN, {Family.IPV4: "fw"}, "WAN")) == policy_objects(
        WEB, OWN, "fw", "WAN"
    )
    assert list(desired_objects([], OWN, V4)) == []
