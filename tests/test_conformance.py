"""The emulator against what real routers answered: one row per case of docs/routeros-lab-cases.md.

Each row (`case-N`) replays its case's requests through a real httpx client, once in-process
(`transport()`) and once over HTTP on 127.0.0.1 (`serve()`), and fails when the emulator stops
answering the way the case recorded. For a case the doc marks INFER or UNKNOWN the row checks the
choice the emulator's docstring states. `NOT_MET` lists the cases the emulator does not follow,
with the reason; `test_every_case_is_placed_once` fails until a new case in the doc is placed in
exactly one of the two.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sync_job.testing.emulator import RouterOSEmulator

F, N, AL = "ip/firewall/filter", "ip/firewall/nat", "ip/firewall/address-list"
F6, N6, AL6 = "ipv6/firewall/filter", "ipv6/firewall/nat", "ipv6/firewall/address-list"
AUTH = ("admin", "s3cret")
CASES_DOC = Path(__file__).resolve().parents[1] / "docs" / "routeros-lab-cases.md"
DUP = "failure: already have such entry"
PORTS = "failure: ports can be specified if proto is tcp,udp,udp-lite,dccp,sctp"
NOT_FOUND = {"error": 404, "message": "Not Found"}
RULE_KEYS = {".id", "chain", "action", "bytes", "packets", "dynamic", "invalid"}
LIST_KEYS = {".id", "list", "address", "creation-time", "disabled", "dynamic"}

Check = Callable[[httpx.Client, RouterOSEmulator], None]


@dataclass(frozen=True)
class Case:
    number: str
    label: str
    check: Check


CASES: list[Case] = []

# Cases the emulator does not follow, and why the job does not need it to.
NOT_MET: dict[str, str] = {
    "11": "a `timeout` that counts down needs a clock, and tests here make no timed assertions; "
    "the job never writes `timeout` and does not read it (its address-list proplist is "
    "`.id,list,address,disabled,dynamic`), so a countdown cannot cause drift",
}


def case(number: str, label: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CASES.append(Case(number, label, check))
        return check

    return register


def bad(detail: str) -> dict[str, object]:
    return {"detail": detail, "error": 400, "message": "Bad Request"}


def add(c: httpx.Client, table: str, body: dict[str, object]) -> dict[str, str]:
    reply = c.put(table, json=body)
    assert reply.status_code == 201, reply.text
    row: dict[str, str] = reply.json()
    return row


def refused(c: httpx.Client, table: str, body: dict[str, object], detail: str) -> None:
    reply = c.put(table, json=body)
    assert (reply.status_code, reply.json()) == (400, bad(detail))


def comments(emu: RouterOSEmulator, table: str = F) -> str:
    return ",".join(row.get("comment", "?") for row in emu.rows(table))


# -- A. IPv6 address lists ------------------------------------------------------------------------


@case("1", "CLIENT")
def bare_ipv6_host_gains_128(c: httpx.Client, emu: RouterOSEmulator) -> None:
    row = add(c, AL6, {"list": "l", "address": "2001:db8::5"})
    assert row["address"] == "2001:db8::5/128"
    assert c.get(f"{AL6}/{row['.id']}").json()["address"] == "2001:db8::5/128"
    # MCP: an exact lookup of the bare host finds nothing; the /128 form finds the entry.
    assert c.get(AL6, params={"address": "2001:db8::5"}).json() == []
    assert [r[".id"] for r in c.get(AL6, params={"address": "2001:db8::5/128"}).json()] == [
        row[".id"]
    ]


@case("2", "CLIENT")
def ipv6_stored_lower_case_and_compressed(c: httpx.Client, emu: RouterOSEmulator) -> None:
    assert add(c, AL6, {"list": "l", "address": "2001:DB8:0:0:0:0:0:5"})["address"] == (
        "2001:db8::5/128"
    )
    assert add(c, AL6, {"list": "l", "address": "FD00:0:0:1::/64"})["address"] == "fd00:0:0:1::/64"


@case("3", "LAB")
def ipv6_prefix_reads_back_exactly(c: httpx.Client, emu: RouterOSEmulator) -> None:
    body = {"list": "test-addr-list", "address": "123:dead:beaf::/64", "timeout": "5m"}
    assert add(c, AL6, body)["address"] == "123:dead:beaf::/64"
    # Host bits inside a prefix: UNKNOWN; the emulator keeps them (as MCP's canonicaliser does).
    assert add(c, AL6, {"list": "l", "address": "2001:db8::5/64"})["address"] == "2001:db8::5/64"


@case("4", "DOC")
def ipv6_list_takes_prefixes_not_ranges(c: httpx.Client, emu: RouterOSEmulator) -> None:
    # 400 is the expected answer; the detail is UNKNOWN and the emulator's choice.
    refused(c, AL6, {"list": "l", "address": "2001:db8::1-2001:db8::5"},
            "failure: 2001:db8::1-2001:db8::5 is not a valid dns name")  # fmt: skip
    refused(c, AL6, {"list": "l", "address": "10.0.0.1-10.0.0.5"},
            "failure: 10.0.0.1-10.0.0.5 is not a valid dns name")  # fmt: skip
    assert emu.rows(AL6) == []


@case("5", "LAB")
def ipv6_literal_in_ipv4_list_is_a_dns_name(c: httpx.Client, emu: RouterOSEmulator) -> None:
    reply = c.put(AL, json={"list": "blacklist", "address": "2001:41d0:203:22be::"})
    assert reply.status_code == 400
    assert reply.content == (
        b'{"detail":"failure: 2001:41d0:203:22be:: is not a valid dns name",'
        b'"error":400,"message":"Bad Request"}'
    )
    assert emu.rows(AL) == []


@case("6", "UNKNOWN")
def ipv6_duplicates_clash_after_normalisation(c: httpx.Client, emu: RouterOSEmulator) -> None:
    add(c, AL6, {"list": "l", "address": "2001:db8::5"})
    refused(c, AL6, {"list": "l", "address": "2001:DB8::5/128"}, DUP)
    refused(c, AL6, {"list": "l", "address": "2001:db8:0::5", "comment": "other"}, DUP)
    add(c, AL6, {"list": "l", "address": "2001:db8::5", "disabled": "yes"})
    add(c, AL6, {"list": "other", "address": "2001:db8::5"})
    add(c, AL, {"list": "l", "address": "10.0.0.5"})  # the IPv4 list is a separate table
    assert len(emu.rows(AL6)) == 3


@case("7", "DOC")
def ipv6_list_has_the_ipv4_field_set(c: httpx.Client, emu: RouterOSEmulator) -> None:
    body = {"list": "l", "comment": "c", "disabled": "no", "dynamic": "no", "timeout": "1h"}
    v6 = add(c, AL6, {**body, "address": "2001:db8::5"})
    v4 = add(c, AL, {**body, "address": "10.0.0.5"})
    assert set(v6) == set(v4) == LIST_KEYS | {"comment", "timeout"}
    assert v6["dynamic"] == v4["dynamic"] == "true"  # a timeout makes an entry dynamic
    for table in (AL, AL6):
        for word in ("move", "unset"):
            reply = c.post(f"{table}/{word}", json={"numbers": v6[".id"]})
            assert reply.json() == bad(f"no such command or directory ({word})")


# -- B. IPv4 address lists ------------------------------------------------------------------------


@case("8", "LAB")
def ipv4_duplicate_add(c: httpx.Client, emu: RouterOSEmulator) -> None:
    entry = {"list": "L", "address": "10.10.10.10"}
    add(c, AL, entry)
    for other in ({"address": "10.10.10.10/32"}, {"comment": "x"}, {"timeout": "1h"}):
        reply = c.put(AL, json={**entry, **other})
        assert reply.status_code == 400
        assert reply.content == (
            b'{"detail":"failure: already have such entry","error":400,"message":"Bad Request"}'
        )
    for allowed in ({"disabled": "yes"}, {"address": "10.10.10.0/24"}, {"list": "M"}):
        add(c, AL, {**entry, **allowed})
    assert len(emu.rows(AL)) == 4
    # Older configs may still hold duplicates: seeding one is possible and all read back.
    emu.seed(AL, entry)
    assert [(r["list"], r["address"]) for r in emu.rows(AL)].count(("L", "10.10.10.10")) == 3


@case("9", "LAB")
def ipv4_32_stripped(c: httpx.Client, emu: RouterOSEmulator) -> None:
    assert add(c, AL, {"list": "l", "address": "192.0.34.166/32"})["address"] == "192.0.34.166"
    range_ = {"list": "l", "address": "192.168.0.0-192.168.1.255"}
    assert add(c, AL, range_)["address"] == "192.168.0.0/23"


@case("10", "LAB")
def address_list_keys(c: httpx.Client, emu: RouterOSEmulator) -> None:
    plain = add(c, AL, {"list": "l", "address": "10.0.0.1"})
    assert set(plain) == LIST_KEYS
    assert plain["disabled"] == "false"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", plain["creation-time"])
    full = add(c, AL, {"list": "l", "address": "10.0.0.2", "comment": "c", "timeout": "1d"})
    assert set(full) == LIST_KEYS | {"comment", "timeout"}
    assert "comment" not in add(c, AL, {"list": "l", "address": "10.0.0.3", "comment": ""})


@case("12", "DOC")
def dynamic_is_writable_on_address_lists(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table, address in ((AL, "10.0.0.1"), (AL6, "2001:db8::1")):
        assert add(c, table, {"list": "l", "address": address, "dynamic": "yes"})["dynamic"] == (
            "true"
        )
    refused(c, F, {"chain": "input", "dynamic": "yes"}, "unknown parameter dynamic")


# -- C. Ports and protocol ------------------------------------------------------------------------


@case("13", "LAB")
def dst_port_keeps_order_and_form(c: httpx.Client, emu: RouterOSEmulator) -> None:
    tcp = {"chain": "forward", "protocol": "tcp"}
    assert add(c, F, {**tcp, "dst-port": "443,4000,80"})["dst-port"] == "443,4000,80"
    assert add(c, N, {**tcp, "chain": "dstnat", "dst-port": "443,80"})["dst-port"] == "443,80"
    assert add(c, F, {**tcp, "dst-port": "33434-33534"})["dst-port"] == "33434-33534"
    assert add(c, F6, {"chain": "input", "protocol": "udp", "dst-port": "500,4500"})[
        "dst-port"
    ] == ("500,4500")


@case("14", "LAB")
def ports_need_a_port_protocol(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table, chain in ((F, "input"), (N, "dstnat"), (F6, "input"), (N6, "dstnat")):
        for name in ("dst-port", "src-port", "port"):
            refused(c, table, {"chain": chain, "action": "accept", name: "8080"}, PORTS)
            refused(c, table, {"chain": chain, "protocol": "icmp", name: "8080"}, PORTS)
        for protocol in ("tcp", "udp", "udp-lite", "dccp", "sctp"):
            add(c, table, {"chain": chain, "protocol": protocol, "dst-port": "8080"})
    rule = add(c, F, {"chain": "input", "protocol": "tcp", "dst-port": "22"})
    path = f"{F}/{rule['.id']}"
    for body in ({"!protocol": ""}, {"protocol": "icmpv6"}):
        assert c.patch(path, json=body).json() == bad(PORTS)
    assert c.get(path).json() == rule


@case("15", "DOC")
def protocol_names_and_numbers(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table in (F6, F):
        assert add(c, table, {"chain": "input", "protocol": "icmpv6"})["protocol"] == "icmpv6"
        assert add(c, table, {"chain": "input", "protocol": "139"})["protocol"] == "139"
        assert add(c, table, {"chain": "input", "protocol": "!udp"})["protocol"] == "!udp"
    rule = add(c, F, {"chain": "input", "protocol": "tcp"})
    reply = c.patch(f"{F}/{rule['.id']}", json={"protocol": ""})
    assert reply.json() == bad("input does not match any value of protocol")


# -- D. Booleans and keys -------------------------------------------------------------------------


@case("16", "LAB")
def booleans_read_true_false(c: httpx.Client, emu: RouterOSEmulator) -> None:
    rule = add(c, F, {"chain": "input", "disabled": "yes", "log": "no"})
    assert (rule["disabled"], rule["log"]) == ("true", "false")
    entry = add(c, AL, {"list": "l", "address": "10.0.0.1", "disabled": "no"})
    assert entry["disabled"] == "false"
    assert all(isinstance(value, str) for value in (*rule.values(), *entry.values()))


@case("17", "LAB")
def rule_keys_depend_on_how_written(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table, chain in ((F, "input"), (N, "dstnat"), (F6, "input"), (N6, "dstnat")):
        plain = add(c, table, {"chain": chain, "comment": ""})
        assert set(plain) == RULE_KEYS  # no disabled, log, log-prefix or empty comment
        assert add(c, table, {"chain": chain, "disabled": "no"})["disabled"] == "false"
        logged = add(c, table, {"chain": chain, "log": "no", "log-prefix": ""})
        assert (logged["log"], logged["log-prefix"]) == ("false", "")
        path = f"{table}/{plain['.id']}"
        c.patch(path, json={"disabled": "yes"})
        assert c.patch(path, json={"disabled": "no"}).json()["disabled"] == "false"
    assert c.get(F, params={"disabled": "false"}).json()[0]["disabled"] == "false"


# -- E. Create and update -------------------------------------------------------------------------


@case("18", "DOC")
def patch_returns_the_whole_object(c: httpx.Client, emu: RouterOSEmulator) -> None:
    rule = add(c, N6, {"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "80"})
    reply = c.patch(f"{N6}/{rule['.id']}", json={"comment": "test"})
    assert (reply.status_code, reply.json()) == (200, {**rule, "comment": "test"})  # 200: INFER


@case("19", "LAB")
def place_before_is_create_only(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table in (F, N, F6, N6):
        a = add(c, table, {"chain": "x", "comment": "a"})
        b = add(c, table, {"chain": "x", "comment": "b", "place-before": a[".id"]})
        assert comments(emu, table) == "b,a" and "place-before" not in b
        reply = c.patch(f"{table}/{a['.id']}", json={"place-before": b[".id"]})
        assert reply.json() == bad("unknown parameter place-before")
    for table in (AL, AL6):
        entry = {"list": "l", "address": "10.0.0.1" if table == AL else "::1"}
        refused(c, table, {**entry, "place-before": "0"}, "unknown parameter place-before")


@case("20", "LAB")
def place_before_on_an_empty_table_fails(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table in (F, N, F6, N6):
        # The REST form is UNKNOWN; the emulator answers 400 `no such item`.
        refused(c, table, {"chain": "forward", "place-before": "0"}, "no such item")
        refused(c, table, {"chain": "forward", "place-before": "*FFFF"}, "no such item")
        assert emu.rows(table) == []


@case("21", "UNKNOWN")
def place_before_a_builtin(c: httpx.Client, emu: RouterOSEmulator) -> None:
    dummy = emu.seed(F, {"chain": "forward", "action": "passthrough"}, dynamic=True)
    # UNKNOWN (weak hint that it succeeds); the emulator refuses, as a `move` there is refused.
    refused(
        c, F, {"chain": "forward", "place-before": dummy[".id"]}, "failure: cannot move builtin"
    )
    refused(c, F, {"chain": "forward", "place-before": "0"}, "failure: cannot move builtin")
    assert len(emu.rows(F)) == 1


@case("21b", "LAB")
def patch_values_are_validated_not_unset(c: httpx.Client, emu: RouterOSEmulator) -> None:
    rule = add(c, F, {"chain": "input", "protocol": "tcp", "dst-port": "80"})
    path = f"{F}/{rule['.id']}"
    assert c.patch(path, json={"protocol": ""}).json() == bad(
        "input does not match any value of protocol"
    )
    assert c.patch(path, json={"dst-port": ""}).json()["dst-port"] == ""  # TF #995: kept empty
    assert "dst-port" not in c.patch(path, json={"!dst-port": ""}).json()  # TF's unset key


@case("22", "LAB")
def unknown_property_names(c: httpx.Client, emu: RouterOSEmulator) -> None:
    refused(c, F, {"chain": "input", "address": "10.0.0.1"}, "unknown parameter address")
    nat = {"chain": "dstnat", "action": "dst-nat"}
    # INFER from INSPECT: IPv4 NAT has neither argument; IPv6 NAT has both.
    refused(c, N, {**nat, "connection-state": "new"}, "unknown parameter connection-state")
    refused(c, N, {**nat, "tcp-flags": "syn"}, "unknown parameter tcp-flags")
    add(c, N6, {**nat, "connection-state": "new", "tcp-flags": "syn"})
    add(c, F, {"chain": "input", "connection-state": "new", "tcp-flags": "syn"})


# -- F. move --------------------------------------------------------------------------------------


def five(c: httpx.Client, table: str) -> dict[str, str]:
    return {name: add(c, table, {"chain": "input", "comment": name})[".id"] for name in "ABCDE"}


@case("23", "LAB")
def move_numbers_destination(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table in (F, N, F6, N6):
        ids = five(c, table)
        reply = c.post(f"{table}/move", json={"numbers": ids["E"], "destination": ids["B"]})
        assert (reply.status_code, reply.json()) == (200, [])
        assert comments(emu, table) == "A,E,B,C,D"
        c.post(f"{table}/move", json={".id": f"{ids['D']},{ids['C']}", "destination": ids["A"]})
        assert comments(emu, table) == "D,C,A,E,B"
        c.post(f"{table}/move", json={"numbers": "4", "destination": "0"})  # positions
        assert comments(emu, table) == "B,D,C,A,E"
        c.post(f"{table}/move", json={"numbers": "A", "destination": ids["B"]})  # a comment
        assert comments(emu, table) == "A,B,D,C,E"
        assert {row["comment"]: row[".id"] for row in emu.rows(table)} == ids


@case("24", "LAB")
def move_edge_cases(c: httpx.Client, emu: RouterOSEmulator) -> None:
    ids = five(c, F)
    assert c.post(f"{F}/move", json={"numbers": ids["A"], "destination": "*FFFF"}).json() == []
    assert comments(emu) == "B,C,D,E,A"  # an unknown destination is the end of the table
    assert c.post(f"{F}/move", json={"numbers": ids["B"]}).json() == []
    assert comments(emu) == "C,D,E,A,B"
    unknown = c.post(f"{F}/move", json={"numbers": "*FFFF", "destination": ids["A"]})
    assert (unknown.status_code, unknown.content) == (404, b'{"error":404,"message":"Not Found"}')
    same = c.post(f"{F}/move", json={"numbers": ids["C"], "destination": ids["C"]})
    assert same.json() == bad("failure: can not move object before itself")
    for body in ({}, {"destination": ids["A"]}):
        assert c.post(f"{F}/move", json=body).json() == bad("missing =.id=")
    other = add(c, F, {"chain": "forward", "comment": "F"})
    assert c.post(f"{F}/move", json={"numbers": other[".id"], "destination": ids["C"]}).json() == []
    assert comments(emu) == "F,C,D,E,A,B"  # another chain is allowed


@case("25", "LAB")
def builtins_cannot_move_or_change(c: httpx.Client, emu: RouterOSEmulator) -> None:
    dummy = emu.seed(F, {"chain": "forward", "action": "passthrough"}, dynamic=True)
    mine = add(c, F, {"chain": "forward", "comment": "mine"})
    for body in (
        {"numbers": mine[".id"], "destination": "0"},
        {"numbers": mine[".id"], "destination": dummy[".id"]},
        {"numbers": dummy[".id"]},
    ):
        assert c.post(f"{F}/move", json=body).json() == bad("failure: cannot move builtin")
    change = bad("failure: cannot change builtin")
    assert c.patch(f"{F}/{dummy['.id']}", json={"disabled": "yes"}).json() == change
    assert c.delete(f"{F}/{dummy['.id']}").json() == change
    assert emu.rows(F)[0] == dummy


@case("26", "DOC")
def address_lists_have_no_move(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for table in (AL, AL6):
        reply = c.post(f"{table}/move", json={"numbers": "0"})
        assert reply.json() == bad("no such command or directory (move)")  # text: UNKNOWN


# -- G. IPv6 filter and NAT -----------------------------------------------------------------------


@case("27", "DOC")
def ipv6_nat_uses_to_address(c: httpx.Client, emu: RouterOSEmulator) -> None:
    nat = {"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "443"}
    row = add(c, N6, {**nat, "to-address": "FD8D::2", "to-ports": "8443"})
    assert row["to-address"] == "fd8d::2/128"  # bare host: UNKNOWN; stored like a list address
    refused(c, N6, {**nat, "to-addresses": "fd8d::2"}, "unknown parameter to-addresses")
    refused(c, N, {**nat, "to-address": "10.0.0.2"}, "unknown parameter to-address")
    assert add(c, N, {**nat, "to-addresses": "10.0.0.2"})["to-addresses"] == "10.0.0.2"


@case("28", "DOC")
def ipv6_nat_actions(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for action in ("same", "endpoint-independent-nat", "socksify", "drop"):
        refused(
            c, N6, {"chain": "srcnat", "action": action}, "input does not match any value of action"
        )
        if action != "drop":
            add(c, N, {"chain": "srcnat", "action": action})
    actions = "accept add-dst-to-address-list add-src-to-address-list dst-nat jump log "
    for action in (actions + "masquerade netmap passthrough redirect return src-nat").split():
        add(c, N6, {"chain": "srcnat", "action": action})


@case("29", "DOC")
def ipv6_filter_differences(c: httpx.Client, emu: RouterOSEmulator) -> None:
    no_value = "input does not match any value of "
    refused(c, F6, {"chain": "input", "action": "tarpit"}, no_value + "action")
    add(c, F, {"chain": "input", "action": "tarpit"})
    reject = {"chain": "input", "action": "reject"}
    refused(c, F6, {**reject, "reject-with": "icmp-network-unreachable"}, no_value + "reject-with")
    assert add(c, F6, {**reject, "reject-with": "icmp-no-route"})["reject-with"] == "icmp-no-route"
    assert add(c, F6, {"chain": "input", "headers": "frag", "hop-limit": "equal:1"})[
        "hop-limit"
    ] == ("equal:1")
    refused(c, F, {"chain": "input", "hop-limit": "equal:1"}, "unknown parameter hop-limit")
    refused(c, N, {"chain": "dstnat", "headers": "frag"}, "unknown parameter headers")


@case("30", "LAB")
def rule_addresses(c: httpx.Client, emu: RouterOSEmulator) -> None:
    row = add(c, F6, {"chain": "forward", "dst-address": "2a02:8109:8380:9002::10/128"})
    assert row["dst-address"] == "2a02:8109:8380:9002::10/128"
    # A bare IPv6 host in a rule: UNKNOWN; the emulator adds /128 as in the list (case 1).
    assert add(c, F6, {"chain": "forward", "src-address": "2001:DB8::7"})["src-address"] == (
        "2001:db8::7/128"
    )
    # IPv4 rules: x/32 reads back as x (CLIENT, TF PR #916).
    assert add(c, F, {"chain": "forward", "src-address": "192.0.2.1/32"})["src-address"] == (
        "192.0.2.1"
    )


# -- H. GET filters, .proplist, .query ------------------------------------------------------------


@case("31", "LAB")
def get_filters_by_exact_equality(c: httpx.Client, emu: RouterOSEmulator) -> None:
    add(c, F, {"chain": "input", "comment": "rule_1"})
    two = add(c, F, {"chain": "input", "comment": "rule_2", "disabled": "no"})
    found = c.get(F, params={"chain": "input", "comment": "rule_2"}).json()
    assert [r[".id"] for r in found] == [two[".id"]]
    assert [r[".id"] for r in c.get(F, params={"disabled": "false"}).json()] == [two[".id"]]
    assert c.delete(f"{F}/{two['.id']}").status_code == 204
    assert c.get(F, params={".id": two[".id"]}).json() == []  # a vanished item: [] not 404
    add(c, AL, {"list": "foo", "address": "10.0.0.1"})
    add(c, AL, {"list": "bar", "address": "10.0.0.1"})
    assert [r["list"] for r in c.get(AL, params={"list": "foo"}).json()] == ["foo"]


@case("32", "LAB")
def proplist_always_includes_id(c: httpx.Client, emu: RouterOSEmulator) -> None:
    row = add(c, AL6, {"list": "l", "address": "2001:db8::1", "comment": "c"})
    assert c.get(AL6, params={".proplist": "comment"}).json() == [
        {".id": row[".id"], "comment": "c"}
    ]
    assert c.get(AL6, params={".proplist": "nothing"}).json() == [{".id": row[".id"]}]


@case("33", "DOC")
def print_with_query(c: httpx.Client, emu: RouterOSEmulator) -> None:
    for name in "abc":
        add(c, AL, {"list": name, "address": "10.0.0.1", "comment": name})
    body = {".query": ["list=a", "list=b", "#|"], ".proplist": "comment"}
    assert [r["comment"] for r in c.post(f"{AL}/print", json=body).json()] == ["a", "b"]
    body = {".query": ["list=a", "#!"], ".proplist": ["comment"]}
    assert [r["comment"] for r in c.post(f"{AL}/print", json=body).json()] == ["b", "c"]


# -- the table ------------------------------------------------------------------------------------


@pytest.fixture(params=["transport", "serve"])
def client(request: pytest.FixtureRequest, emu: RouterOSEmulator) -> Iterator[httpx.Client]:
    if request.param == "transport":
        base = "http://router.invalid/rest"
        with httpx.Client(transport=emu.transport(), base_url=base, auth=AUTH) as c:
            yield c
    else:
        with emu.serve() as base, httpx.Client(base_url=base, auth=AUTH) as c:
            yield c


@pytest.fixture
def emu() -> RouterOSEmulator:
    return RouterOSEmulator(*AUTH)


@pytest.mark.parametrize("row", CASES, ids=[f"case-{row.number}" for row in CASES])
def test_case(row: Case, client: httpx.Client, emu: RouterOSEmulator) -> None:
    row.check(client, emu)


def doc_cases() -> dict[str, str]:
    """Case number -> its label(s) as the doc's heading gives them."""
    headings = re.findall(r"^### (\d+[a-z]?)\. (.*)$", CASES_DOC.read_text(), re.MULTILINE)
    return dict(headings)


def test_every_case_is_placed_once() -> None:
    placed = Counter([row.number for row in CASES] + list(NOT_MET))
    assert [number for number, count in placed.items() if count > 1] == []
    assert sorted(placed, key=natural) == sorted(doc_cases(), key=natural)
    assert len(placed) == 34  # the count: 1-33 and 21b


def test_rows_carry_the_doc_label() -> None:
    """A row's label is the first label the doc's heading names, so the row says which of its
    assertions are measured (LAB, CLIENT, DOC) and which are the emulator's choice."""
    titles = doc_cases()
    for row in CASES:
        labels = re.findall(r"\b(LAB|CLIENT|DOC|INFER|UNKNOWN)\b", titles[row.number])
        assert labels and labels[0] == row.label, (row.number, titles[row.number])


def natural(number: str) -> tuple[int, str]:
    return int(re.match(r"\d+", number).group()), number  # type: ignore[union-attr]
