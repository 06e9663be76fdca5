"""The RouterOS REST emulator, driven through real httpx clients (in-process and over HTTP)."""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync_job.testing.emulator import FASTTRACK_COMMENT, RouterOSEmulator

F, N, AL = "ip/firewall/filter", "ip/firewall/nat", "ip/firewall/address-list"
AUTH = ("admin", "s3cret")
ID_RE = re.compile(r"\*[0-9A-F]+")
NOT_FOUND = {"error": 404, "message": "Not Found"}
PROTO, ACTION = (
    "input does not match any value of protocol",
    "input does not match any value of action",
)
CHANGE, MOVE = "failure: cannot change builtin", "failure: cannot move builtin"
DUP = "failure: already have such entry"


def bad(detail: str) -> dict[str, object]:
    return {"detail": detail, "error": 400, "message": "Bad Request"}


def check(reply: httpx.Response, status: int, body: object) -> None:
    assert (reply.status_code, reply.json()) == (status, body)


@pytest.fixture
def emu() -> RouterOSEmulator:
    return RouterOSEmulator(*AUTH)


@pytest.fixture(params=["transport", "serve"])
def client(request: pytest.FixtureRequest, emu: RouterOSEmulator) -> Iterator[httpx.Client]:
    """Every test using `client` runs once in-process and once over HTTP on 127.0.0.1."""
    if request.param == "transport":
        base = "http://router.invalid/rest"
        with httpx.Client(transport=emu.transport(), base_url=base, auth=AUTH) as c:
            yield c
    else:
        with emu.serve() as base, httpx.Client(base_url=base, auth=AUTH) as c:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/rest", base)
            yield c


def add(c: httpx.Client, table: str, body: dict[str, object]) -> dict[str, str]:
    reply = c.put(table, json=body)
    assert reply.status_code == 201, reply.text
    row: dict[str, str] = reply.json()
    return row


def comments(emu: RouterOSEmulator, table: str = F) -> str:
    return ",".join(row.get("comment", "?") for row in emu.rows(table))


def fill(body: dict[str, str], ids: dict[str, str]) -> dict[str, str]:
    return {k: v.format(**ids) for k, v in body.items()}


@pytest.mark.parametrize("auth", [None, ("admin", "wrong"), ("root", "s3cret"), ("admin", "")])
def test_bad_credentials_are_401(emu: RouterOSEmulator, auth: tuple[str, str] | None) -> None:
    with httpx.Client(transport=emu.transport(), base_url="http://r.invalid/rest", auth=auth) as c:
        reply = c.put(F, json={"chain": "input"})
    assert (reply.status_code, reply.content) == (401, b'{"error":401,"message":"Unauthorized"}')
    assert emu.rows(F) == []
    assert emu.requests == Counter({("PUT", F): 1})


def test_filter_add_returns_exact_string_object(client: httpx.Client) -> None:
    body = {"chain": "input", "action": "accept", "protocol": "tcp", "dst-port": 8291}
    row = add(client, F, {**body, "comment": "mgr:winbox", "log": False})
    assert ID_RE.fullmatch(row[".id"])
    assert row == (
        {".id": row[".id"], "action": "accept", "bytes": "0", "chain": "input"}
        | {"comment": "mgr:winbox", "dst-port": "8291", "dynamic": "false", "invalid": "false"}
        | {"log": "false", "packets": "0", "protocol": "tcp"}
    )
    assert list(row) == sorted(row)
    assert client.get(f"{F}/{row['.id']}").json() == row


def test_ids_are_fresh_and_never_reused(client: httpx.Client) -> None:
    first = add(client, F, {"chain": "input"})[".id"]
    assert client.delete(f"{F}/{first}").status_code == 204
    later = [add(client, N, {"chain": "x"}), add(client, AL, {"list": "x", "address": "1.2.3.4"})]
    assert {first} | {row[".id"] for row in later} == {f"*{n:X}" for n in (1, 2, 3)}


def test_address_list_add_strips_32_and_has_its_key_set(client: httpx.Client) -> None:
    row = add(client, AL, {"list": "blocked", "address": "203.0.113.7/32", "comment": "mgr:f"})
    assert set(row) == {".id", "address", "comment", "creation-time", "disabled", "dynamic", "list"}
    assert (row["address"], row["disabled"], row["dynamic"]) == ("203.0.113.7", "false", "false")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["creation-time"])
    timed = add(client, AL, {"list": "blocked", "address": "10.9.0.0/16", "timeout": "1h"})
    assert (timed["timeout"], timed["dynamic"]) == ("1h", "true")


@pytest.mark.parametrize(
    ("table", "body", "detail"),
    [
        (F, {"action": "accept"}, "missing value(s) of argument(s) chain"),
        (N, {}, "missing value(s) of argument(s) chain"),
        (AL, {"list": "x"}, "missing value(s) of argument(s) address"),
        (F, {"chain": "input", "bogus": "1"}, "unknown parameter bogus"),
        (F, {"chain": "input", "bytes": "5"}, "unknown parameter bytes"),
        (F, {"chain": "input", "to-ports": "80"}, "unknown parameter to-ports"),
        (AL, {"list": "x", "place-before": "*1"}, "unknown parameter place-before"),
        (F, {"chain": "input", "protocol": ""}, PROTO),
        (F, {"chain": "input", "protocol": "256"}, PROTO),
        (F, {"chain": "input", "protocol": "tcpx"}, PROTO),
        (F, {"chain": "input", "action": "masquerade"}, ACTION),
        (N, {"chain": "dstnat", "action": "drop"}, ACTION),
        (F, {"chain": "input", "dst-port": "ssh"}, "invalid value for argument dst-port"),
        (F, {"chain": "input", "dst-port": "90-80"}, "invalid value for argument dst-port"),
        (F, {"chain": "i", "dst-port": "22,70000"}, "value of dst-port out of range (0..65535)"),
        (N, {"chain": "dstnat", "to-ports": "!80"}, "invalid value for argument to-ports"),
        (F, {"chain": "input", "disabled": "maybe"}, "input does not match any value of disabled"),
        (F, {"chain": "input", "comment": ["a"]}, "invalid value for argument comment"),
        (AL, {"list": "x", "address": "a.example"}, "failure: a.example is not a valid dns name"),
        (AL, {"list": "x", "address": "10.0.0.300"}, "failure: 10.0.0.300 is not a valid dns name"),
        (F, {"chain": "input", "place-before": "*FFFF"}, "no such item"),
    ],
)
def test_invalid_add_is_400_with_exact_detail(
    client: httpx.Client, emu: RouterOSEmulator, table: str, body: dict[str, object], detail: str
) -> None:
    check(client.put(table, json=body), 400, bad(detail))
    assert emu.rows(table) == []


@pytest.mark.parametrize(
    ("table", "body", "key", "stored"),
    [
        (F, {"protocol": "6"}, "protocol", "6"),
        (F, {"disabled": "yes"}, "disabled", "true"),
        (N, {"disabled": "no"}, "disabled", "false"),
        (F, {"log": True}, "log", "true"),
        (N, {"log": False}, "log", "false"),
        (AL, {"disabled": "true"}, "disabled", "true"),
        (F, {"protocol": "!udp"}, "protocol", "!udp"),
        (F, {"protocol": "tcp", "dst-port": "!22,80,8000-8100"}, "dst-port", "!22,80,8000-8100"),
        (F, {"src-address": "10.0.0.1/32"}, "src-address", "10.0.0.1"),
        (N, {"action": "dst-nat", "to-ports": "8080-8081"}, "to-ports", "8080-8081"),
        (AL, {"address": "10.1.1.5/24"}, "address", "10.1.1.0/24"),
        (AL, {"address": "192.168.0.0-192.168.1.255"}, "address", "192.168.0.0/23"),
        (AL, {"address": "10.0.0.1-10.0.0.5"}, "address", "10.0.0.1-10.0.0.5"),
    ],
)
def test_valid_values_are_stored_in_router_form(
    client: httpx.Client, table: str, body: dict[str, object], key: str, stored: str
) -> None:
    base = {"list": "l", "address": "1.1.1.1"} if table == AL else {"chain": "c"}
    assert add(client, table, {**base, **body})[key] == stored


def test_place_before_inserts_and_is_not_stored(
    client: httpx.Client, emu: RouterOSEmulator
) -> None:
    a, b = (add(client, F, {"chain": "input", "comment": c}) for c in "ab")
    x = add(client, F, {"chain": "forward", "comment": "x", "place-before": b[".id"]})
    add(client, F, {"chain": "forward", "comment": "y", "place-before": "0"})
    assert comments(emu) == "y,a,x,b"
    assert "place-before" not in x
    assert all("place-before" not in row for row in emu.rows(F))
    assert emu.rows(F)[1] == a


def five_rules(client: httpx.Client) -> dict[str, str]:
    return {c: add(client, F, {"chain": "input", "comment": c})[".id"] for c in "ABCDE"}


@pytest.mark.parametrize(
    ("body", "order"),
    [
        ({"numbers": "{D},{B}", "destination": "{C}"}, "A,D,B,C,E"),  # block, in the given order
        ({".id": "{E}", "destination": "{A}"}, "E,A,B,C,D"),
        ({"numbers": "{A}"}, "B,C,D,E,A"),  # no destination: end of table
        ({"numbers": "{B},{A}", "destination": "*FFFF"}, "C,D,E,B,A"),  # unknown: end
        ({"numbers": "{D}", "destination": "0"}, "D,A,B,C,E"),  # bare number = position
        ({"numbers": "3", "destination": "{B}"}, "A,D,B,C,E"),
        ({"numbers": "C", "destination": "{A}"}, "C,A,B,D,E"),  # a comment names the rule
    ],
)
def test_move_places_block_and_keeps_ids(
    client: httpx.Client, emu: RouterOSEmulator, body: dict[str, str], order: str
) -> None:
    ids = five_rules(client)
    check(client.post(f"{F}/move", json=fill(body, ids)), 200, [])
    assert comments(emu) == order
    assert {row["comment"]: row[".id"] for row in emu.rows(F)} == ids


@pytest.mark.parametrize(
    ("path", "body", "status", "reply"),
    [
        (f"{F}/move", {"numbers": "*FFFF", "destination": "{A}"}, 404, NOT_FOUND),
        (f"{F}/move", {"numbers": "{B},*FFFF"}, 404, NOT_FOUND),
        (f"{F}/move", {"numbers": "{C}", "destination": "{C}"}, 400, bad("failure: can not move object before itself")),  # noqa: E501
        (f"{F}/move", {}, 400, bad("missing =.id=")),
        (f"{F}/move", {"destination": "{A}"}, 400, bad("missing =.id=")),
        (f"{AL}/move", {"numbers": "{A}"}, 400, bad("no such command or directory (move)")),
        (f"{F}/remove", {"numbers": "{A},*FFFF"}, 404, NOT_FOUND),
    ],
)  # fmt: skip
def test_move_and_remove_errors_change_nothing(
    client: httpx.Client, emu: RouterOSEmulator, path: str, body: dict[str, str], status: int,
    reply: dict[str, object],
) -> None:  # fmt: skip
    ids = five_rules(client)
    check(client.post(path, json=fill(body, ids)), status, reply)
    assert comments(emu) == "A,B,C,D,E"


def test_move_works_on_nat_and_remove_deletes(client: httpx.Client, emu: RouterOSEmulator) -> None:
    x, y = (add(client, N, {"chain": "dstnat", "comment": c})[".id"] for c in "xy")
    check(client.post(f"{N}/move", json={"numbers": y, "destination": x}), 200, [])
    assert comments(emu, N) == "y,x"
    check(client.post(f"{N}/remove", json={"numbers": f"{x},{y}"}), 200, [])
    assert emu.rows(N) == []


@pytest.mark.parametrize(
    ("first", "second", "allowed"),
    [
        ({}, {"address": "10.10.10.10/32"}, False),
        ({}, {"comment": "other"}, False),
        ({}, {"timeout": "1h"}, False),
        ({"disabled": "yes"}, {}, True),
        ({}, {"disabled": True}, True),
        ({}, {"address": "10.10.10.0/24"}, True),
        ({}, {"list": "other"}, True),
    ],
)
def test_address_list_duplicates(
    client: httpx.Client, emu: RouterOSEmulator, first: dict, second: dict, allowed: bool
) -> None:
    entry = {"list": "blocked", "address": "10.10.10.10"}
    add(client, AL, {**entry, **first})
    reply = client.put(AL, json={**entry, **second})
    if allowed:
        assert reply.status_code == 201
    else:
        check(reply, 400, bad(DUP))
    assert len(emu.rows(AL)) == (2 if allowed else 1)


def test_reenabling_a_duplicate_is_refused(client: httpx.Client, emu: RouterOSEmulator) -> None:
    add(client, AL, {"list": "b", "address": "10.0.0.1"})
    off = add(client, AL, {"list": "b", "address": "10.0.0.1", "disabled": "yes"})
    check(client.patch(f"{AL}/{off['.id']}", json={"disabled": "no"}), 400, bad(DUP))
    assert [row["disabled"] for row in emu.rows(AL)] == ["false", "true"]


def test_duplicate_check_follows_creates_patches_and_deletes(
    client: httpx.Client, emu: RouterOSEmulator
) -> None:
    """The uniqueness check sees every write: a stale entry index would let a duplicate in after
    a create or an address PATCH, or refuse an address freed by a PATCH, DELETE or `remove`."""
    a = add(client, AL, {"list": "b", "address": "10.0.0.1"})
    check(client.put(AL, json={"list": "b", "address": "10.0.0.1"}), 400, bad(DUP))
    assert client.patch(f"{AL}/{a['.id']}", json={"address": "10.0.0.2"}).status_code == 200
    check(client.put(AL, json={"list": "b", "address": "10.0.0.2"}), 400, bad(DUP))
    b = add(client, AL, {"list": "b", "address": "10.0.0.1"})  # freed by the PATCH
    check(client.patch(f"{AL}/{b['.id']}", json={"address": "10.0.0.2"}), 400, bad(DUP))
    assert client.patch(f"{AL}/{a['.id']}", json={"list": "c"}).status_code == 200
    assert client.patch(f"{AL}/{b['.id']}", json={"address": "10.0.0.2"}).status_code == 200
    assert client.delete(f"{AL}/{b['.id']}").status_code == 204
    b = add(client, AL, {"list": "b", "address": "10.0.0.2"})  # freed by the DELETE
    check(client.post(f"{AL}/remove", json={"numbers": b[".id"]}), 200, [])
    add(client, AL, {"list": "b", "address": "10.0.0.2"})  # freed by `remove`
    check(client.put(AL, json={"list": "c", "address": "10.0.0.2"}), 400, bad(DUP))
    assert [(r["list"], r["address"]) for r in emu.rows(AL)] == [
        ("c", "10.0.0.2"),
        ("b", "10.0.0.2"),
    ]


def test_duplicate_check_follows_disable_and_enable(client: httpx.Client) -> None:
    a = add(client, AL, {"list": "b", "address": "10.0.0.1"})
    assert client.patch(f"{AL}/{a['.id']}", json={"disabled": "yes"}).status_code == 200
    b = add(client, AL, {"list": "b", "address": "10.0.0.1"})  # a disabled entry does not count
    check(client.patch(f"{AL}/{a['.id']}", json={"disabled": "no"}), 400, bad(DUP))
    assert client.patch(f"{AL}/{b['.id']}", json={"disabled": "yes"}).status_code == 200
    assert client.patch(f"{AL}/{a['.id']}", json={"disabled": "no"}).status_code == 200
    check(client.put(AL, json={"list": "b", "address": "10.0.0.1"}), 400, bad(DUP))


def test_duplicate_check_sees_seeded_and_restored_entries(
    client: httpx.Client, emu: RouterOSEmulator
) -> None:
    emu.seed(AL, {"list": "b", "address": "10.0.0.1/32"})
    saved = emu.snapshot()
    check(client.put(AL, json={"list": "b", "address": "10.0.0.1"}), 400, bad(DUP))
    later = add(client, AL, {"list": "b", "address": "10.0.0.2"})
    emu.restore(saved)
    assert [r["address"] for r in emu.rows(AL)] == ["10.0.0.1"]
    assert client.get(f"{AL}/{later['.id']}").status_code == 404
    check(client.put(AL, json={"list": "b", "address": "10.0.0.1"}), 400, bad(DUP))
    again = add(client, AL, {"list": "b", "address": "10.0.0.2"})  # the restore dropped it
    assert int(again[".id"][1:], 16) > int(later[".id"][1:], 16)  # ids are never reused


def test_patch_returns_full_object_and_keeps_disabled(client: httpx.Client) -> None:
    rule = add(client, F, {"chain": "input", "protocol": "tcp", "comment": "c"})
    path = f"{F}/{rule['.id']}"
    off = client.patch(path, json={"disabled": "yes", "comment": "c (off)"})
    check(off, 200, {**rule, "disabled": "true", "comment": "c (off)"})
    on = client.patch(path, json={"disabled": False, "comment": "", "!protocol": ""}).json()
    assert on["disabled"] == "false"
    assert "comment" not in on and "protocol" not in on
    assert client.get(path).json() == on


@pytest.mark.parametrize(
    ("target", "body", "status", "reply"),
    [
        ("{id}", {"place-before": "{id}"}, 400, bad("unknown parameter place-before")),
        ("{id}", {"protocol": "bogus"}, 400, bad(PROTO)),
        ("{id}", {"chain": "input", "x": "1"}, 400, bad("unknown parameter x")),
        ("*FFFF", {"comment": "x"}, 404, NOT_FOUND),
    ],
)
def test_patch_errors(
    client: httpx.Client, target: str, body: dict[str, str], status: int, reply: object
) -> None:
    rule = add(client, F, {"chain": "input", "protocol": "tcp"})
    ids = {"id": rule[".id"]}
    check(client.patch(f"{F}/{target.format(**ids)}", json=fill(body, ids)), status, reply)
    assert client.get(f"{F}/{rule['.id']}").json() == rule


def test_delete_is_204_then_404(client: httpx.Client) -> None:
    rid = add(client, F, {"chain": "input"})[".id"]
    first = client.delete(f"{F}/{rid.replace('*', '%2A')}")
    assert (first.status_code, first.content) == (204, b"")
    second = client.delete(f"{F}/{rid}")
    assert (second.status_code, second.content) == (404, b'{"error":404,"message":"Not Found"}')
    check(client.get(f"{F}/{rid}"), 404, NOT_FOUND)
    check(client.get(F, params={".id": rid}), 200, [])


def test_get_filters_and_proplist(client: httpx.Client) -> None:
    a = add(client, F, {"chain": "input", "comment": "a"})
    b = add(client, F, {"chain": "forward", "comment": "b", "disabled": "no"})
    assert [r["comment"] for r in client.get(F, params={"chain": "forward"}).json()] == ["b"]
    check(client.get(F, params={"chain": "input", "comment": "b"}), 200, [])
    assert [r["comment"] for r in client.get(F, params={"disabled": "false"}).json()] == ["b"]
    expected = [{".id": row[".id"], "comment": row["comment"]} for row in (a, b)]
    check(client.get(F, params={".proplist": "comment"}), 200, expected)


@pytest.mark.parametrize(
    ("query", "found"),
    [
        (["list=a"], ["1", "2"]),
        (["list=a", "address=10.0.0.2"], ["2"]),
        (["list=a", "list=b", "#|"], ["1", "2", "3"]),
        (["list=a", "#!"], ["3"]),
        (["list=a", "comment=1", "#&"], ["1"]),
        (["timeout"], ["3"]),
        (["-timeout", "list=a", "#&"], ["1", "2"]),
    ],
)
def test_print_query(client: httpx.Client, query: list[str], found: list[str]) -> None:
    add(client, AL, {"list": "a", "address": "10.0.0.1", "comment": "1"})
    add(client, AL, {"list": "a", "address": "10.0.0.2", "comment": "2"})
    add(client, AL, {"list": "b", "address": "10.0.0.3", "comment": "3", "timeout": "1d"})
    rows = client.post(f"{AL}/print", json={".query": query, ".proplist": ["comment"]}).json()
    assert [r["comment"] for r in rows] == found
    assert all(set(r) == {".id", "comment"} for r in rows)


def test_dynamic_rules_are_builtin() -> None:
    emu = RouterOSEmulator(fasttrack_dummy=True)
    base = "http://router.invalid/rest"
    with httpx.Client(transport=emu.transport(), base_url=base, auth=("admin", "")) as c:
        dummy = emu.rows(F)[0]
        assert dummy == (
            {".id": dummy[".id"], "action": "passthrough", "bytes": "0", "chain": "forward"}
            | {"comment": FASTTRACK_COMMENT, "dynamic": "true", "packets": "0"}
        )
        rule = add(c, F, {"chain": "input", "comment": "mine"})[".id"]
        other = emu.seed(F, {"chain": "forward", "comment": "hotspot"}, dynamic=True)[".id"]
        assert comments(emu) == f"{FASTTRACK_COMMENT},hotspot,mine"
        did = dummy[".id"]
        for reply, detail in [
            (c.patch(f"{F}/{did}", json={"disabled": "yes"}), CHANGE),
            (c.delete(f"{F}/{other}"), CHANGE),
            (c.post(f"{F}/remove", json={"numbers": did}), CHANGE),
            (c.post(f"{F}/move", json={"numbers": did}), MOVE),
            (c.post(f"{F}/move", json={"numbers": rule, "destination": did}), MOVE),
            (c.post(f"{F}/move", json={"numbers": rule, "destination": "0"}), MOVE),
            (c.put(F, json={"chain": "input", "place-before": other}), MOVE),
        ]:
            check(reply, 400, bad(detail))
        assert comments(emu) == f"{FASTTRACK_COMMENT},hotspot,mine"
        assert emu.rows(F)[0] == dummy


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reply"),
    [
        ("GET", "ip/firewall/mangle", None, 400, bad("no such command or directory (mangle)")),
        ("GET", "ipv6/route", None, 400, bad("no such command or directory (route)")),
        ("POST", f"{F}/frobnicate", b"{}", 400, bad("no such command or directory (frobnicate)")),
        ("POST", f"{F}/export", b"", 501, {**bad("emulator does not implement export"), "error": 501, "message": "Not Implemented"}),  # noqa: E501
        ("GET", f"{F}/print", None, 400, bad("no such command")),
        ("GET", f"{F}/mgr:winbox", None, 400, bad("no such command prefix")),
        ("PUT", F, b"{not json", 400, bad("JSON parse error")),
        ("PUT", F, b"[]", 400, bad("JSON body must be an object")),
    ],
)  # fmt: skip
def test_path_and_body_errors(
    client: httpx.Client, method: str, path: str, body: bytes | None, status: int, reply: object
) -> None:
    check(client.request(method, path, content=body), status, reply)


def test_requests_are_counted_by_method_and_path(
    client: httpx.Client, emu: RouterOSEmulator
) -> None:
    rid = add(client, F, {"chain": "input"})[".id"]
    client.get(f"{F}/{rid}")
    client.patch(f"{F}/{rid}", json={"comment": "x"})
    client.patch(f"{F}/*FFFF", json={"comment": "x"})
    client.post(f"{F}/move", json={"numbers": rid})
    client.put(AL, json={"list": "x"})
    client.delete(f"{F}/{rid}")
    assert emu.requests == Counter(
        {("PUT", F): 1, ("GET", F): 1, ("PATCH", F): 2, ("POST", f"{F}/move"): 1}
        | {("PUT", AL): 1, ("DELETE", F): 1}
    )
    emu.reset_counts()
    emu.seed(F, {"chain": "input"})
    assert emu.requests == Counter()


def test_fault_hooks(client: httpx.Client, emu: RouterOSEmulator) -> None:
    emu.before_request.append(lambda method, path: (503, b"") if method == "GET" else None)
    assert client.get(F).status_code == 503
    emu.after_write.append(lambda method, path: (500, b'{"error":500}'))
    assert client.put(F, json={"chain": "input", "comment": "applied"}).status_code == 500
    assert comments(emu) == "applied"
    assert client.put(F, json={"chain": "input", "bogus": "1"}).status_code == 400
    assert emu.requests[("GET", F)] == 1


def test_serve_handles_concurrent_clients_and_stops(emu: RouterOSEmulator) -> None:
    def worker(base: str, n: int) -> None:
        with httpx.Client(base_url=base, auth=AUTH) as c:
            for i in range(10):
                add(c, AL, {"list": "l", "address": f"10.{n}.0.{i}"})

    with emu.serve() as base:
        threads = [threading.Thread(target=worker, args=(base, n)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [row[".id"] for row in httpx.get(f"{base}/{AL}", auth=AUTH).json()]
    assert len(ids) == len(set(ids)) == 40
    assert emu.requests[("PUT", AL)] == 40
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/{F}", auth=AUTH)


def test_serve_refuses_non_loopback(emu: RouterOSEmulator) -> None:
    with pytest.raises(ValueError, match="loopback"), emu.serve(host="0.0.0.0"):
        pass


def test_serve_speaks_https(emu: RouterOSEmulator, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder(name, name, key.public_key(), 1, now, now + datetime.timedelta(1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "crt").write_bytes(cert.public_bytes(pem))
    pkcs8, clear = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    (tmp_path / "key").write_bytes(key.private_bytes(pem, pkcs8, clear))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "crt", tmp_path / "key")
    trust = ssl.create_default_context(cafile=tmp_path / "crt")
    with emu.serve(ssl_context=server) as base:
        assert base.startswith("https://127.0.0.1:")
        with httpx.Client(base_url=base, auth=AUTH, verify=trust) as c:
            row = add(c, F, {"chain": "input"})
    assert emu.rows(F) == [row]
