"""An in-memory RouterOS v7 REST emulator: a documented test double, not a router.

Serves `ip/firewall/{filter,nat,address-list}` and `ipv6/firewall/{filter,nat,address-list}` as
described in the project's RouterOS REST notes (`docs/routeros-rest.md`, section numbers in
brackets) and, where the two disagree, as real routers answered in the lab cases
(`docs/routeros-lab-cases.md`, "case N"; tests/test_conformance.py checks each one). `demo` runs
it in-process via `transport()`; tests also run it over HTTP(S) via `serve()`, which binds IPv4
loopback only.

Documented behaviour followed: Basic auth on every request, else `401` without `detail` [2.2];
PUT add 201 / GET print 200 / PATCH set 200 / DELETE 204 / POST `<menu>/<cmd>` [1.1, 1.3]; all
reply values strings, booleans `"true"`/`"false"`, sorted keys, error envelope with `detail`
absent on 401/404 [2.1, 5.1]; rule and address-list key sets (`disabled`/`log` only once
written, empty `comment` omitted, address-list `disabled` always present, `timeout` entries
dynamic) [5.2, 5.3]; `*`+hex ids from one never-reused counter [5.6]; GET `?k=v` ANDed
equality (a row lacking `k` never matches) and `.proplist` that always includes `.id` [3.1];
POST `print` with `.proplist` and `.query` words `name`, `-name`, `name=x`, `=name=x` and `#`
ops `!` `&` `|` `.` on a stack of implicit trues [3.2]; add-only `place-before` and LAB-HA's
measured `move` (block in the given order before `destination`, ids kept, missing/unknown
destination = end, unknown `numbers` 404, the two measured 400s, bare numbers = console
positions, comments accepted in `numbers`) [4.1]; address-list uniqueness on list + address
of enabled entries and `/32` stripping [5.3]; `src-address`/`dst-address` `x/32` read as `x`
[5.4]; dynamic filter/nat rows are builtins [4.2].

Lab cases followed: IPv6 list addresses stored lower case, compressed, a bare host with `/128`, a
prefix as given (cases 1-3); an IPv6 literal (or anything but IPv4) in the IPv4 list is 400
`failure: <x> is not a valid dns name` (case 5); `dynamic` is a writable address-list argument
(case 12); a port matcher (`dst-port`, `src-port`, `port`) without a port protocol is 400
`failure: ports can be specified if proto is tcp,udp,udp-lite,dccp,sctp`, on add and on a PATCH
that would leave one (case 14); IPv6 NAT has `to-address`, not `to-addresses` (case 27), and
the IPv6 action and argument sets and `reject-with` values of cases 28-29; IPv4 NAT has no
`connection-state` or `tcp-flags` (case 22, INFER from INSPECT: followed); moving a builtin is
400 `failure: cannot move builtin` (case 25).

Choices where the reference says UNKNOWN or INFER:

* PATCH answers 200; an unknown id in any URL is 404. Ids parse as hex (`*1a` = `*1A`).
* Missing required arguments: 400 `missing value(s) of argument(s) list, address`.
* Malformed JSON: 400 `JSON parse error`; a non-object body: 400 `JSON body must be an
  object`; an empty body is `{}`. Arrays/objects/null/floats as values: 400
  `invalid value for argument <name>`; JSON integers become decimal strings.
* Ports (`dst-port`, `src-port`, `port`, `to-ports`): comma list of `N`/`N-M`, leading `!`
  except on `to-ports`; malformed or reversed: 400 `invalid value for argument <name>`;
  above 65535: 400 `value of <name> out of range (0..65535)`; `""` is stored (TF #995).
* `protocol`: a 5.4 name or 0..255 (optional `!`), stored as written: numbers stay numbers
  (case 15 says `6` -> `tcp` is UNKNOWN). For case 14 the numbers of the five port protocols
  (6, 17, 136, 33, 132) carry ports too; a negated protocol (`!tcp`) does not; `to-ports` needs
  no protocol (the recorded text names only matchers).
  `action` defaults to `accept`. Other values (interfaces, lists, chains, states, timeouts)
  are stored verbatim. Allow-lists are per table (`reject-with`, `hw-offload` filter only;
  `to-addresses`, `to-ports` nat only). Read-only keys and `.id` on add are
  `unknown parameter`; `.id` in a PATCH body is ignored; `"!prop": ""` in PATCH unsets a
  non-required property (TF); `comment: ""` removes the comment.
* `place-before` with an unknown id or a position past the end, so also `0` on an empty table
  (case 20, REST form UNKNOWN): 400 `no such item`; naming a dynamic row (case 21, UNKNOWN,
  weak hint it succeeds): 400 `failure: cannot move builtin`.
* `move`: `destination` resolves ids and positions only (a comment there = unknown = end). A
  dynamic row in `numbers` or as `destination` (so position 0 above the fasttrack dummy):
  400 `failure: cannot move builtin` (case 25). `move` on an address list (case 26, UNKNOWN):
  400 `no such command or directory (move)`.
* PATCH/DELETE/`remove` of a dynamic filter/nat row: 400 `failure: cannot change builtin`.
  Dynamic address-list entries (with `timeout`) are ordinary and may be changed or removed.
  `remove` with an unknown item: 404, nothing removed.
* Address-list `address`: IPv4 `a.b.c.d`, `a.b.c.d/n` (host bits cleared) or `a-b` (stored as
  a CIDR when it is exactly one); anything else, DNS names and IPv6 included, is 400
  `failure: <x> is not a valid dns name` (DNS entries are not emulated). IPv6 list: an IPv6
  host or prefix, host bits kept (case 3, UNKNOWN: MCP keeps them); anything else, IPv4 ranges
  included, is 400 with that same detail (case 4: detail UNKNOWN; FQDNs, accepted by a real
  router, are not emulated). Duplicates in the IPv6 list follow the IPv4 rule on the stored form,
  so `2001:db8::5` and `2001:DB8::5/128` clash (case 6, INFER). `timeout` never counts down
  (case 11 is not emulated: no clock); `creation-time` is local time in the 7.23 format
  (case 10). A `timeout` makes an entry dynamic whatever `dynamic` says.
* IPv6 rule addresses (`src-address`, `dst-address`, NAT `to-address`): stored like an IPv6
  list address, so a bare host gains `/128` (case 30 and case 27 say UNKNOWN; the argument
  type is the list's "IPv6 prefix"); not an IPv6 host or prefix (optional `!`): 400
  `invalid value for argument <name>`. IPv4 `to-addresses` is stored as written (UNKNOWN).
* The fasttrack dummy has the keys of the fixture captured in 4.2 (no `invalid`).
* Paths: outside `/rest` 404; unknown or unemulated menu or command word 400
  `no such command or directory (<word>)`; GET of a command path 400 `no such command`, of
  another word 400 `no such command prefix`; other method/shape mismatches 400
  `no such command`; methods besides GET/PUT/PATCH/DELETE/POST 501. Real commands not
  emulated (all but `print`, `move`, `remove`) 501 `emulator does not implement <cmd>`.
* Query words: `<`/`>` comparisons and `#<digits>` are not emulated (400
  `unknown query operation`); `~` is not special, so such words match nothing.
* Replies are compact JSON with `Content-Type: application/json` when they have a body; 401
  carries no `WWW-Authenticate` header.

Fault-injection extension point: `before_request`, `after_write` and `after_request` are lists
of `Hook`s, `(method, path) -> (status, body) | None`, empty by default. `before_request` runs at
the top of `handle` (after counting, before auth); the first non-None reply is returned as is.
`after_write` runs after a request changed state; a non-None reply replaces the real one while
the change stays applied (a 400 does not prove nothing changed, 2.2). `after_request` runs last,
after every request that got as far as being processed, and may replace the reply the same way.
Besides returning a reply, a hook may raise `DropConnection` (the connection closes with no
reply: from `before_request` nothing was processed, from the later lists the change stays
applied), `DelayReply(seconds)` (the request is processed normally and its reply is delivered
that much later; the in-process transport raises `httpx.ReadTimeout` at once instead of waiting
when the delay reaches the client's read timeout, `serve()` really sleeps in the handler thread)
or `Crash` (a `BaseException`: the client process "dies" at that instant, tearing through every
`except Exception`; in-process only, `serve()` turns it into a dropped connection). Hooks run
under the emulator's re-entrant lock and may call `rows()`/`seed()`; code outside a hook takes
the same lock with `with emulator.locked():` to act between two requests.

Speed model (off by default, so tests stay fast): `latency` seconds are spent on every request,
and requests are served one at a time, as RouterOS's web service does (terraform-provider-
routeros issue 976 measured about 0.1 s per REST call: 1,868 GETs in 3 m 42 s). The wait is
spent holding a serving lock separate from the state lock, so `locked()` and hooks are not held
up by it, but a second client's request waits for the first to be answered.

Address-list uniqueness is checked against an index of the enabled entries by (list, address),
kept up to date by every write (add, seed, PATCH, DELETE, `remove`, `restore`), so an add costs
the same against 50,000 entries as against none; `snapshot()`/`restore()` put the tables back as
they were (ids are never reused, so the id counter is not rewound).

`Faults(emulator)` builds the fault modes tests switch on from those hooks: an error status
(500, 503, 401, 400 with a `detail`, ...) for the Nth request or for a seeded fraction of
requests, a reply delayed past the client timeout, a connection dropped before the request was
processed or after a write took effect, RouterOS's `400 Session closed`, and a crash right after
the Nth write. See `Fault` and `Faults`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

FILTER = "ip/firewall/filter"
NAT = "ip/firewall/nat"
ADDRESS_LIST = "ip/firewall/address-list"
FILTER6 = "ipv6/firewall/filter"
NAT6 = "ipv6/firewall/nat"
ADDRESS_LIST6 = "ipv6/firewall/address-list"
IPV4_TABLES = (FILTER, NAT, ADDRESS_LIST)
IPV6_TABLES = (FILTER6, NAT6, ADDRESS_LIST6)
TABLES = IPV4_TABLES + IPV6_TABLES
RULE_TABLES = (FILTER, NAT, FILTER6, NAT6)
LIST_TABLES = (ADDRESS_LIST, ADDRESS_LIST6)

Row = dict[str, str]
EntryKey = tuple[str | None, str | None]  # an address-list entry's (list, address)
Reply = tuple[int, bytes]
Hook = Callable[[str, str], Reply | None]
WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE", "POST"})
ALL_METHODS = frozenset({"GET", *WRITE_METHODS})


class DropConnection(Exception):
    """Raised by a hook: close the connection without any reply."""


class DelayReply(Exception):
    """Raised by a hook: process the request, deliver its reply `seconds` late.

    `handle` re-raises it with `reply` set to the reply the client would have received.
    """

    def __init__(self, seconds: float, reply: Reply | None = None) -> None:
        super().__init__(f"reply delayed by {seconds}s")
        self.seconds = seconds
        self.reply = reply


class Crash(BaseException):
    """Raised by a hook: the client process is killed at this instant (in-process runs only).

    A `BaseException`, like `KeyboardInterrupt`, so that no `except Exception` in the client can
    catch it and carry on: the run stops exactly where a `kill -9` would have stopped it.
    """


def _words(*texts: str) -> frozenset[str]:
    return frozenset(" ".join(texts).split())


PROTOCOLS = _words(
    "dccp ddp egp encap etherip ggp gre hmp icmp icmpv6 idpr-cmtp igmp ipencap ipip ipsec-ah",
    "ipsec-esp ipv6-encap ipv6-frag ipv6-nonxt ipv6-opts ipv6-route iso-tp4 l2tp ospf pim pup",
    "rdp rspf rsvp sctp st tcp udp udp-lite vmtp vrrp xns-idp xtp",
)
_COMMON_ACTIONS = "accept add-dst-to-address-list add-src-to-address-list jump log passthrough"
_NAT6_ACTIONS = "return dst-nat masquerade netmap redirect src-nat"  # lab case 28
ACTIONS = {
    FILTER: _words(_COMMON_ACTIONS, "return drop fasttrack-connection reject tarpit"),
    NAT: _words(_COMMON_ACTIONS, _NAT6_ACTIONS, "endpoint-independent-nat same socksify"),
    FILTER6: _words(_COMMON_ACTIONS, "return drop fasttrack-connection reject"),  # case 29
    NAT6: _words(_COMMON_ACTIONS, _NAT6_ACTIONS),
}
_RULE_PROPS = _words(
    "chain action protocol dst-port src-port port src-address dst-address src-address-list",
    "dst-address-list in-interface in-interface-list out-interface out-interface-list",
    "connection-nat-state connection-mark packet-mark src-address-type",
    "dst-address-type icmp-options address-list address-list-timeout comment",
    "disabled log log-prefix jump-target",
)
# IPv6 filter `reject-with` values (lab case 29); IPv4's are stored as written.
REJECT_WITH6 = _words(
    "icmp-address-unreachable icmp-admin-prohibited icmp-err-src-routing-header",
    "icmp-headers-too-long icmp-no-route icmp-not-neighbour icmp-port-unreachable tcp-reset",
)
_STATE_PROPS = _words("connection-state tcp-flags")  # not on IPv4 NAT (lab case 22)
_LIST_PROPS = _words("list address comment disabled dynamic timeout")
_PROPS = {
    FILTER: _RULE_PROPS | _STATE_PROPS | {"reject-with", "hw-offload"},
    NAT: _RULE_PROPS | {"to-addresses", "to-ports"},
    FILTER6: _RULE_PROPS | _STATE_PROPS | {"reject-with", "headers", "hop-limit"},
    NAT6: _RULE_PROPS | _STATE_PROPS | {"headers", "hop-limit", "to-address", "to-ports"},
    ADDRESS_LIST: _LIST_PROPS,
    ADDRESS_LIST6: _LIST_PROPS,
}
_REQUIRED: dict[str, tuple[str, ...]] = dict.fromkeys(RULE_TABLES, ("chain",))
_REQUIRED |= dict.fromkeys(LIST_TABLES, ("list", "address"))
_BOOL_PROPS = frozenset({"disabled", "log", "hw-offload", "dynamic"})
_BOOL_WORDS = {"yes": "true", "true": "true", "no": "false", "false": "false"}
_PORT_PROPS = frozenset({"dst-port", "src-port", "port", "to-ports"})
_PORT_MATCHERS = ("dst-port", "src-port", "port")
# Lab case 14 names these; their protocol numbers are accepted too (a choice, see the docstring).
_PORT_PROTOCOLS = _words("tcp udp udp-lite dccp sctp 6 17 136 33 132")
PORTS_NEED_PROTOCOL = "failure: ports can be specified if proto is tcp,udp,udp-lite,dccp,sctp"
MOVE_BUILTIN = "failure: cannot move builtin"
CHANGE_BUILTIN = "failure: cannot change builtin"
_HOST_PROPS = frozenset({"src-address", "dst-address", "to-address"})
_LIST_COMMANDS = _words("add comment disable edit enable export find get print remove reset set")
_RULE_COMMANDS = _LIST_COMMANDS | _words("move reset-counters reset-counters-all unset")
_COMMANDS = dict.fromkeys(RULE_TABLES, _RULE_COMMANDS) | dict.fromkeys(LIST_TABLES, _LIST_COMMANDS)
_MENU_PREFIXES = frozenset({"ip", "ip/firewall", "ipv6", "ipv6/firewall", *TABLES})
FASTTRACK_COMMENT = "special dummy rule to show fasttrack counters"
_ID_RE = re.compile(r"\*([0-9A-Fa-f]+)")
_PORT_RE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


class _RestError(Exception):
    """A failure reply: status plus the RouterOS `detail` (None on 401/404)."""

    def __init__(self, status: int, detail: str | None = None) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.detail = detail


def _bad(detail: str) -> _RestError:
    return _RestError(400, detail)


def _dumps(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def error_body(status: int, detail: str | None = None) -> bytes:
    """The RouterOS error envelope, e.g. `{"error":404,"message":"Not Found"}`."""
    body: dict[str, object] = {"error": status, "message": HTTPStatus(status).phrase}
    if detail is not None:
        body["detail"] = detail
    return _dumps(body)


def _scalar(name: str, value: object) -> str:
    """A JSON request value as the string RouterOS stores."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise _bad(f"invalid value for argument {name}")


def _canonical_id(token: str) -> str | None:
    match = _ID_RE.fullmatch(token)
    return None if match is None else f"*{int(match.group(1), 16):X}"


def _check_protocol(value: str) -> None:
    bare = value.removeprefix("!")
    if bare in PROTOCOLS or (re.fullmatch(r"[0-9]{1,3}", bare) and int(bare) <= 255):
        return
    raise _bad("input does not match any value of protocol")


def _check_ports(name: str, value: str) -> None:
    if value == "":
        return
    bare = value if name == "to-ports" else value.removeprefix("!")
    for part in bare.split(","):
        match = _PORT_RE.fullmatch(part.strip())
        if match is None:
            raise _bad(f"invalid value for argument {name}")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if max(low, high) > 65535:
            raise _bad(f"value of {name} out of range (0..65535)")
        if low > high:
            raise _bad(f"invalid value for argument {name}")


def _network_text(net: ipaddress.IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def _ipv6_text(value: str) -> str:
    """An IPv6 host or prefix as RouterOS stores it: lower case, compressed, `/128` on a bare
    host (lab cases 1-3), host bits kept; ValueError for anything else."""
    if "%" in value or "-" in value or ":" not in value:
        raise ValueError(value)
    return str(ipaddress.IPv6Interface(value))


def normalise_list_address(value: str, *, ipv6: bool = False) -> str:
    """An address-list `address` as RouterOS stores it (DNS names are refused)."""
    try:
        if ipv6:
            return _ipv6_text(value)
        if "-" in value:
            low_text, high_text = value.split("-", 1)
            low, high = ipaddress.IPv4Address(low_text), ipaddress.IPv4Address(high_text)
            if low > high:
                raise ValueError(value)
            nets = list(ipaddress.summarize_address_range(low, high))
            return _network_text(nets[0]) if len(nets) == 1 else f"{low}-{high}"
        return _network_text(ipaddress.IPv4Network(value, strict=False))
    except ValueError:
        raise _bad(f"failure: {value} is not a valid dns name") from None


def _normalise(table: str, name: str, value: str) -> str:
    """Validate one written property and return its stored form."""
    if name in _BOOL_PROPS:
        if value.lower() not in _BOOL_WORDS:
            raise _bad(f"input does not match any value of {name}")
        return _BOOL_WORDS[value.lower()]
    if name == "protocol":
        _check_protocol(value)
    elif name == "action" and value not in ACTIONS[table]:
        raise _bad("input does not match any value of action")
    elif name == "reject-with" and table == FILTER6 and value not in REJECT_WITH6:
        raise _bad("input does not match any value of reject-with")
    elif name in _PORT_PROPS:
        _check_ports(name, value)
    elif name in _HOST_PROPS:
        return _rule_address(table, name, value)
    elif name == "address" and table in LIST_TABLES:
        return normalise_list_address(value, ipv6=table == ADDRESS_LIST6)
    return value


def _rule_address(table: str, name: str, value: str) -> str:
    """`src-address`/`dst-address`/`to-address` of a rule in its stored form."""
    if table in IPV4_TABLES:
        return value.removesuffix("/32")
    bare = value.removeprefix("!")
    try:
        return value[: len(value) - len(bare)] + _ipv6_text(bare)
    except ValueError:
        raise _bad(f"invalid value for argument {name}") from None


def _seed_value(table: str, name: str, value: str) -> str:
    """Lossless canonicalisation for seeded rows (no validation)."""
    if name in _BOOL_PROPS:
        return _BOOL_WORDS.get(value.lower(), value)
    if name in _HOST_PROPS or name == "address":
        if table in IPV4_TABLES:
            return value.removesuffix("/32")
        bare = value.removeprefix("!")
        with contextlib.suppress(ValueError):
            return value[: len(value) - len(bare)] + _ipv6_text(bare)
    return value


def _check_port_protocol(table: str, row: Row) -> None:
    """A port matcher needs a port-carrying protocol (lab case 14), on add and after a PATCH."""
    if table not in RULE_TABLES or not any(row.get(name) for name in _PORT_MATCHERS):
        return
    if row.get("protocol", "").lower() not in _PORT_PROTOCOLS:  # seeded rows keep their case
        raise _bad(PORTS_NEED_PROTOCOL)


def _names(name: str, value: object) -> list[str]:
    """A `.proplist`: comma string or array of strings."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    return [part.strip() for part in _scalar(name, value).split(",") if part.strip()]


def _project(row: Row, proplist: list[str] | None) -> Row:
    """A copy of `row` with keys sorted, limited to `.id` + `proplist` when given."""
    keep = None if proplist is None else {".id", *proplist}
    return {k: v for k, v in sorted(row.items()) if keep is None or k in keep}


def _query_word(row: Row, word: str) -> bool:
    if word.startswith("-"):
        return word[1:] not in row
    if word[:1] in ("<", ">"):
        raise _bad("unknown query operation")
    name, eq, value = word.removeprefix("=").partition("=")
    return row.get(name) == value if eq else name in row


def query_matches(row: Row, words: list[str]) -> bool:
    """Evaluate API query words on a stack that starts as infinite trues (DOC-API)."""
    stack: list[bool] = []

    def pop() -> bool:
        return stack.pop() if stack else True

    for word in words:
        if not word.startswith("#"):
            stack.append(_query_word(row, word))
            continue
        for op in word[1:]:
            if op == "!":
                stack.append(not pop())
            elif op in "&|":
                left, right = pop(), pop()
                stack.append(left and right if op == "&" else left or right)
            elif op == ".":
                top = pop()
                stack += [top, top]
            else:
                raise _bad("unknown query operation")
    return all(stack)


def _parse_body(body: bytes) -> dict[str, object]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        raise _bad("JSON parse error") from None
    if not isinstance(data, dict):
        raise _bad("JSON body must be an object")
    return data


def _no_such(word: str) -> _RestError:
    return _bad(f"no such command or directory ({word})")


def _route(path: str) -> tuple[str, list[str]]:
    """Split `/rest/ip/firewall/<menu>/<tail...>` into (table, tail)."""
    if path != "/rest" and not path.startswith("/rest/"):
        raise _RestError(404)
    segments = [s for s in path.removeprefix("/rest").split("/") if s]
    for index, segment in enumerate(segments[:3]):
        if "/".join(segments[: index + 1]) not in _MENU_PREFIXES:
            raise _no_such(segment)
    if len(segments) < 3:
        raise _bad("no such command")
    return "/".join(segments[:3]), segments[3:]


def count_key(path: str) -> str:
    """`/rest/ip/firewall/filter/*1A` -> `ip/firewall/filter` (the `requests` key path)."""
    rest = unquote(path).removeprefix("/rest").strip("/")
    head, _, last = rest.rpartition("/")
    return head if last.startswith("*") else rest


def _is_builtin(table: str, row: Row) -> bool:
    return table in RULE_TABLES and row.get("dynamic") == "true"


def _run_hooks(hooks: list[Hook], method: str, path: str, delay: list[float]) -> Reply | None:
    """The first reply a hook injects; a `DelayReply` is noted in `delay` and the rest run."""
    for hook in hooks:
        try:
            injected = hook(method, path)
        except DelayReply as slow:
            delay.append(slow.seconds)
            continue
        if injected is not None:
            return injected
    return None


def _delayed(delay: list[float], reply: Reply) -> Reply:
    if delay:
        raise DelayReply(max(delay), reply)
    return reply


class RouterOSEmulator:
    """A RouterOS REST double holding filter, nat and address-list tables in memory.

    `requests` counts every request `handle` saw, failures included, by (METHOD, path without
    `/rest/` and without a trailing `/<id>`). `before_request`/`after_write` are the fault
    injection hooks described in the module docstring.
    """

    def __init__(
        self,
        username: str = "admin",
        password: str = "",
        *,
        fasttrack_dummy: bool = False,
        latency: float = 0.0,
    ) -> None:
        # Seconds every request takes (the speed model in the module docstring); settable.
        self.latency = latency
        self.sleep: Callable[[float], None] = time.sleep  # tests swap it to count, not wait
        self._serving = threading.Lock()
        self._credentials = f"{username}:{password}".encode()
        # `/system/resource` as a CHR answers it (docs/routeros-rest.md: LAB-HA read
        # `"7.23.7 (long-term)"`); tests set another version to play an older router.
        self.system_resource = {"version": "7.23.7 (long-term)", "board-name": "CHR",
                                "architecture-name": "x86_64"}  # fmt: skip
        # False plays a router with the ipv6 package disabled: no /ipv6 menus at all.
        self.ipv6_package = True
        self._lock = threading.RLock()
        self._tables: dict[str, list[Row]] = {table: [] for table in TABLES}
        # Enabled address-list entries per list table: (list, address) -> their `.id`s (seed()
        # allows repeats).
        self._enabled: dict[str, dict[EntryKey, set[str]]] = {table: {} for table in LIST_TABLES}
        self._next_id = 1
        self._writes = 0
        self.requests: Counter[tuple[str, str]] = Counter()
        self.before_request: list[Hook] = []
        self.after_write: list[Hook] = []
        self.after_request: list[Hook] = []
        if fasttrack_dummy:
            dummy = {"chain": "forward", "action": "passthrough", "comment": FASTTRACK_COMMENT}
            self.seed(FILTER, dummy, dynamic=True)
            self._tables[FILTER][0].pop("invalid")

    # -- direct access for tests and the demo -------------------------------------------------

    def rows(self, table: str) -> list[Row]:
        """Copies of the rows of `table`, in configured order, exactly as GET shows them."""
        with self._lock:
            return [_project(row, None) for row in self._table(table)]

    def seed(
        self, table: str, fields: Mapping[str, str | bool | int], *, dynamic: bool = False
    ) -> Row:
        """Place a row without auth, validation or counting; dynamic rules go to the top block."""
        with self._lock:
            rows = self._table(table)
            if ".id" in fields:
                raise ValueError("seed() assigns .id itself")
            values = {k: _seed_value(table, k, _scalar(k, v)) for k, v in fields.items()}
            row = self._new_row(table, values)
            if dynamic:
                row["dynamic"] = "true"
            index = len(rows)
            if dynamic and table in RULE_TABLES:
                index = next((i for i, r in enumerate(rows) if not _is_builtin(table, r)), index)
            return self._store(table, row, index)

    def reset_counts(self) -> None:
        """Forget the request counts (e.g. after a test's setup phase)."""
        with self._lock:
            self.requests.clear()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the emulator's re-entrant lock: no request is processed until the block ends.

        Hooks already run under it; code outside the request path (fault switches, counters a
        caller keeps beside `requests`) uses this to see or change state between two requests.
        """
        with self._lock:
            yield

    def snapshot(self) -> dict[str, list[Row]]:
        """Copies of every table's rows (ids and order included), for `restore`."""
        with self._lock:
            return {table: [dict(row) for row in rows] for table, rows in self._tables.items()}

    def restore(self, snapshot: Mapping[str, list[Row]]) -> None:
        """Put the tables back as `snapshot()` saw them; new ids still continue the counter."""
        with self._lock:
            self._tables = {table: [dict(row) for row in snapshot[table]] for table in TABLES}
            self._enabled = {table: {} for table in LIST_TABLES}
            for table in LIST_TABLES:
                for row in self._tables[table]:
                    self._index_entry(table, row)

    # -- the HTTP-free core ---------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        authorization: str | None,
    ) -> tuple[int, bytes]:
        """Answer one REST request; `path` is like `/rest/ip/firewall/filter/*1A`."""
        if self.latency > 0:
            with self._serving:  # one request at a time, each taking `latency`
                self.sleep(self.latency)
                return self._handle(method, path, query, body, authorization)
        return self._handle(method, path, query, body, authorization)

    def _handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        authorization: str | None,
    ) -> tuple[int, bytes]:
        method = method.upper()
        with self._lock:
            self.requests[(method, count_key(path))] += 1
            path = unquote(path)
            delay: list[float] = []
            injected = _run_hooks(self.before_request, method, path, delay)
            if injected is not None:
                return _delayed(delay, injected)
            writes = self._writes
            try:
                status, payload = self._dispatch(method, path, query, body, authorization)
                reply: Reply = status, b"" if payload is None else _dumps(payload)
            except _RestError as err:
                reply = err.status, error_body(err.status, err.detail)
            if self._writes != writes:
                reply = _run_hooks(self.after_write, method, path, delay) or reply
            reply = _run_hooks(self.after_request, method, path, delay) or reply
            return _delayed(delay, reply)

    def _dispatch(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, auth: str | None
    ) -> tuple[int, object]:
        if not self._authorized(auth):
            raise _RestError(401)
        if method not in ("GET", "PUT", "PATCH", "DELETE", "POST"):
            raise _RestError(501)
        if path.rstrip("/") == "/rest/system/resource" and method == "GET":
            names = _names(".proplist", query[".proplist"]) if ".proplist" in query else None
            return 200, _project(dict(self.system_resource), names)
        table, tail = _route(path)
        if table in IPV6_TABLES and not self.ipv6_package:
            raise _no_such("ipv6")  # a router whose ipv6 package is disabled has no such menu
        if len(tail) > 1:
            raise _no_such(tail[1])
        proplist = _names(".proplist", query[".proplist"]) if ".proplist" in query else None
        if not tail:
            if method == "GET":
                filters = {k: v for k, v in query.items() if k != ".proplist"}
                return 200, self._select(table, filters, [], proplist)
            if method == "PUT":
                return 201, self._add(table, _parse_body(body))
            raise _bad("no such command")
        word = tail[0]
        if word.startswith("*"):
            if method == "GET":
                return 200, _project(self._tables[table][self._row_index(table, word)], proplist)
            if method == "PATCH":
                return 200, self._patch(table, word, _parse_body(body))
            if method == "DELETE":
                self._delete(table, word)
                return 204, None
            raise _bad("no such command")
        if method == "POST":
            return 200, self._command(table, word, _parse_body(body))
        if method == "GET":
            raise _bad("no such command" if word in _COMMANDS[table] else "no such command prefix")
        raise _no_such(word)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except binascii.Error:
            return False
        return hmac.compare_digest(decoded, self._credentials)

    # -- table helpers ----------------------------------------------------------------------------

    def _table(self, table: str) -> list[Row]:
        if table not in self._tables:
            raise ValueError(f"unknown table {table!r}; expected one of {TABLES}")
        return self._tables[table]

    def _new_row(self, table: str, values: Row) -> Row:
        """Defaults plus the written values; `.id` is assigned by `_store`."""
        if table in LIST_TABLES:
            created = time.strftime("%Y-%m-%d %H:%M:%S")
            row = {"creation-time": created, "disabled": "false", "dynamic": "false"}
        else:
            row = {"action": "accept", "bytes": "0", "packets": "0"}
            row |= {"dynamic": "false", "invalid": "false"}
        row |= values
        if table in LIST_TABLES and "timeout" in row:
            row["dynamic"] = "true"
        if row.get("comment") == "":
            del row["comment"]
        return row

    def _store(self, table: str, row: Row, index: int) -> Row:
        row[".id"] = f"*{self._next_id:X}"
        self._next_id += 1
        self._tables[table].insert(index, row)
        if table in LIST_TABLES:
            self._index_entry(table, row)
        self._writes += 1
        return _project(row, None)

    def _drop(self, table: str, index: int) -> None:
        """Delete one row (DELETE, `remove`), keeping the entry index in step."""
        if table in LIST_TABLES:
            self._unindex_entry(table, self._tables[table][index])
        del self._tables[table][index]

    @staticmethod
    def _entry_key(row: Row) -> EntryKey:
        return row.get("list"), row.get("address")

    def _index_entry(self, table: str, row: Row) -> None:
        if row.get("disabled") != "true":
            self._enabled[table].setdefault(self._entry_key(row), set()).add(row[".id"])

    def _unindex_entry(self, table: str, row: Row) -> None:
        ids = self._enabled[table].get(self._entry_key(row))
        if ids is not None:
            ids.discard(row[".id"])
            if not ids:
                del self._enabled[table][self._entry_key(row)]

    def _index(self, table: str, token: str, *, by_comment: bool = False) -> int | None:
        """Resolve an `.id`, a bare console position, or (for move/remove) a comment."""
        rows = self._tables[table]
        token = token.strip()
        if token.startswith("*"):
            wanted = _canonical_id(token)
            return next((i for i, r in enumerate(rows) if r[".id"] == wanted), None)
        if token.isdecimal():
            return int(token) if int(token) < len(rows) else None
        if by_comment:
            return next((i for i, r in enumerate(rows) if r.get("comment") == token), None)
        return None

    def _row_index(self, table: str, token: str) -> int:
        """The index of the row an URL `.id` names, or 404."""
        index = self._index(table, token) if token.startswith("*") else None
        if index is None:
            raise _RestError(404)
        return index

    def _numbers(self, table: str, data: Mapping[str, object]) -> list[int]:
        """Indexes named by `numbers` (or `.id`), in the order given, without repeats."""
        raw = data.get("numbers", data.get(".id"))
        if isinstance(raw, list):
            raw = ",".join(_scalar("numbers", item) for item in raw)
        tokens = [t.strip() for t in _scalar("numbers", raw or "").split(",") if t.strip()]
        if not tokens:
            raise _bad("missing =.id=")
        indexes: list[int] = []
        for token in tokens:
            index = self._index(table, token, by_comment=True)
            if index is None:
                raise _RestError(404)
            if index not in indexes:
                indexes.append(index)
        return indexes

    def _select(
        self, table: str, filters: Mapping[str, str], words: list[str], proplist: list[str] | None
    ) -> list[Row]:
        return [
            _project(row, proplist)
            for row in self._tables[table]
            if all(row.get(k) == v for k, v in filters.items()) and query_matches(row, words)
        ]

    def _validated(
        self, table: str, data: Mapping[str, object], *, adding: bool
    ) -> tuple[Row, str | None, list[str]]:
        """(values to write, place-before or None, properties to unset)."""
        allowed = _PROPS[table]
        values: Row = {}
        unset: list[str] = []
        place_before = None
        for name, raw in data.items():
            if adding and name == "place-before" and table in RULE_TABLES:
                place_before = _scalar(name, raw)
            elif not adding and name == ".id":
                continue
            elif not adding and name[1:] in allowed and name.startswith("!"):
                if name[1:] in _REQUIRED[table]:
                    raise _bad(f"unknown parameter {name}")
                unset.append(name[1:])
            elif name not in allowed:
                raise _bad(f"unknown parameter {name}")
            else:
                values[name] = _normalise(table, name, _scalar(name, raw))
        return values, place_before, unset

    def _check_duplicate(self, table: str, row: Row) -> None:
        """RouterOS refuses a second enabled entry with the same list and address [5.3]."""
        if row.get("disabled") == "true":
            return
        others = self._enabled[table].get((row["list"], row["address"]), set()) - {row.get(".id")}
        if others:
            raise _bad("failure: already have such entry")

    # -- verbs ----------------------------------------------------------------------------------

    def _add(self, table: str, data: Mapping[str, object]) -> Row:
        values, place_before, _ = self._validated(table, data, adding=True)
        missing = [name for name in _REQUIRED[table] if name not in values]
        if missing:
            raise _bad(f"missing value(s) of argument(s) {', '.join(missing)}")
        index = len(self._tables[table])
        if place_before is not None:
            anchor = self._index(table, place_before)
            if anchor is None:
                raise _bad("no such item")
            if _is_builtin(table, self._tables[table][anchor]):
                raise _bad(MOVE_BUILTIN)
            index = anchor
        row = self._new_row(table, values)
        _check_port_protocol(table, row)
        if table in LIST_TABLES:
            self._check_duplicate(table, row)
        return self._store(table, row, index)

    def _patch(self, table: str, token: str, data: Mapping[str, object]) -> Row:
        index = self._row_index(table, token)
        row = self._tables[table][index]
        if _is_builtin(table, row):
            raise _bad(CHANGE_BUILTIN)
        values, _, unset = self._validated(table, data, adding=False)
        updated = row | values
        for name in unset:
            updated.pop(name, None)
        if updated.get("comment") == "":
            del updated["comment"]
        _check_port_protocol(table, updated)
        if table in LIST_TABLES:
            self._check_duplicate(table, updated)
            self._unindex_entry(table, row)
            self._index_entry(table, updated)
        self._tables[table][index] = updated
        self._writes += 1
        return _project(updated, None)

    def _delete(self, table: str, token: str) -> None:
        index = self._row_index(table, token)
        if _is_builtin(table, self._tables[table][index]):
            raise _bad(CHANGE_BUILTIN)
        self._drop(table, index)
        self._writes += 1

    def _command(self, table: str, word: str, data: dict[str, object]) -> object:
        if word not in _COMMANDS[table]:
            raise _no_such(word)
        if word == "print":
            return self._print(table, data)
        if word == "move":
            self._move(table, data)
        elif word == "remove":
            self._remove(table, data)
        else:
            raise _RestError(501, f"emulator does not implement {word}")
        return []

    def _print(self, table: str, data: Mapping[str, object]) -> list[Row]:
        proplist = _names(".proplist", data[".proplist"]) if ".proplist" in data else None
        words = data.get(".query", [])
        if isinstance(words, str):
            words = [words]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise _bad("invalid value for argument .query")
        return self._select(table, {}, [str(w) for w in words], proplist)

    def _move(self, table: str, data: Mapping[str, object]) -> None:
        rows = self._tables[table]
        moving = self._numbers(table, data)
        target = data.get("destination")
        dest = None if target is None else self._index(table, _scalar("destination", target))
        if dest is not None and dest in moving:
            raise _bad("failure: can not move object before itself")
        if any(_is_builtin(table, rows[i]) for i in [*moving, *([] if dest is None else [dest])]):
            raise _bad(MOVE_BUILTIN)
        block = [rows[i] for i in moving]
        remaining = [row for i, row in enumerate(rows) if i not in moving]
        at = len(remaining)
        if dest is not None:
            at = next(i for i, row in enumerate(remaining) if row is rows[dest])
        rows[:] = remaining[:at] + block + remaining[at:]
        self._writes += 1

    def _remove(self, table: str, data: Mapping[str, object]) -> None:
        indexes = self._numbers(table, data)
        rows = self._tables[table]
        if any(_is_builtin(table, rows[i]) for i in indexes):
            raise _bad(CHANGE_BUILTIN)
        for index in sorted(indexes, reverse=True):
            self._drop(table, index)
        self._writes += 1

    # -- transports -------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """In-process transport for `httpx.Client(transport=..., base_url=".../rest")`."""

        def respond(request: httpx.Request) -> httpx.Response:
            path = request.url.raw_path.decode("ascii").partition("?")[0]
            query = dict(request.url.params.items())
            auth = request.headers.get("Authorization")
            try:
                status, payload = self.handle(request.method, path, query, request.read(), auth)
            except DropConnection:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            except DelayReply as slow:
                timeout = (request.extensions.get("timeout") or {}).get("read")
                if timeout is not None and slow.seconds >= timeout:
                    raise httpx.ReadTimeout(
                        "The read operation timed out", request=request
                    ) from None
                time.sleep(slow.seconds)
                status, payload = slow.reply or (504, b"")
            headers = {"Content-Type": "application/json"} if payload else {}
            return httpx.Response(status, content=payload, headers=headers)

        return httpx.MockTransport(respond)

    @contextlib.contextmanager
    def serve(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> Iterator[str]:
        """Serve over HTTP(S) on a loopback address in a daemon thread; yields the base URL."""
        if not re.fullmatch(r"127(\.[0-9]{1,3}){3}", host):
            raise ValueError(f"the emulator only binds IPv4 loopback addresses, not {host!r}")
        server = _Server((host, port), _handler_class(self))
        if ssl_context is not None:
            # The handshake happens in the handler thread (see `setup`), so a silent client
            # cannot stall the accept loop.
            server.socket = ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="routeros-emulator"
        )
        thread.daemon = True
        thread.start()
        scheme = "http" if ssl_context is None else "https"
        try:
            yield f"{scheme}://{host}:{server.server_address[1]}/rest"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: dropped connections and failed TLS handshakes are routine in tests."""


def _handler_class(emulator: RouterOSEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.settimeout(self.timeout)
                self.request.do_handshake()
            super().setup()

        timeout = 30

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, raw_query = self.path.partition("?")
            query = dict(parse_qsl(raw_query, keep_blank_values=True))
            auth = self.headers.get("Authorization")
            try:
                status, payload = emulator.handle(self.command, path, query, body, auth)
            except (DropConnection, Crash):
                self.close_connection = True  # no status line, no headers: the socket just closes
                return
            except DelayReply as slow:
                time.sleep(slow.seconds)  # outside the emulator's lock: other clients go on
                status, payload = slow.reply or (504, b"")
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: tests read the `requests` counter instead of access logs."""

    return Handler
