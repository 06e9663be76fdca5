"""RouterOS REST client: `RouterReader` reads the three firewall tables, `RouterWriter` adds writes.

`--check` is handed a `RouterReader`, which has no method that could change the router. Once
told the ownership (`keep_owned`), a table read streams the reply (`jsonstream`) and keeps only
what the planner needs: the owned rows (their name field starts with `Ownership.head`, the
marker included) and, in a filter table, one `.id`-only stand-in for each run of foreign rows
(enough to see which owned rules sit directly above the marker), so memory does not grow with
the router's foreign tables. Every row's `.id` is still checked, kept or not (valid, and unique
in its table, by `_IdSet`). Reads are
retried with capped, jittered exponential backoff on connection errors, timeouts, 5xx and
RouterOS's `Session closed`; writes are never retried here (the applier decides after
re-reading). A write whose outcome is unknown (the connection dropped or timed out after sending,
a 5xx, `Session closed`, a reply that cannot be parsed) raises a `RouterError` with `ambiguous`
set. 401/403, the `not enough permissions` 500 and TLS failures raise `RouterAuthError` at once
(no later request could succeed), saying what to check.

The whole client is bounded by `RouterSettings.deadline`, counted from its creation (or from
`restart_deadline`, once a run holds its Lease): no request starts after it, and each request's
timeout is cut to the time left, so a run ends on its own well inside the CronJob's
`activeDeadlineSeconds` (240 s) instead of being killed. Every httpx failure becomes a
`RouterError` naming the request; credentials are never part of a message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import ssl
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import httpx

from sync_job.errors import RouterAuthError, RouterError, RouterUnreachable
from sync_job.logs import secret_forms
from sync_job.model import Family
from sync_job.router.jsonstream import NotRows, iter_rows
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table, tables_of

log = logging.getLogger(__name__)

# Only what the planner compares or needs to place rules; a 50,000-entry address list read
# without `.proplist` is several times larger (creation-time, counters, flags). The rules' scope
# fields (`desired.SCOPE_FIELDS`) are read whether or not --wan-interface-list is set: they are
# managed either way.
PROPLISTS: Mapping[Table, str] = {
    Table.FILTER: ".id,chain,action,protocol,dst-port,src-address-list,in-interface-list,"
    "connection-nat-state,dst-address,comment,disabled,dynamic",
    Table.NAT: ".id,chain,action,protocol,dst-port,src-address-list,to-addresses,to-ports,"
    "in-interface-list,comment,disabled,dynamic",
    Table.ADDRESS_LIST: ".id,list,address,disabled,dynamic",
    Table.IPV6_FILTER: ".id,chain,action,protocol,dst-port,src-address-list,in-interface-list,"
    "dst-address,comment,disabled,dynamic",
    # IPv6 NAT names its target `to-address` (docs/routeros-lab-cases.md case 27). The job
    # writes no IPv6 NAT rule; it reads the menu to remove one it owns.
    Table.IPV6_NAT: ".id,chain,action,protocol,dst-port,src-address-list,to-address,to-ports,"
    "in-interface-list,comment,disabled,dynamic",
    Table.IPV6_ADDRESS_LIST: ".id,list,address,disabled,dynamic",
}
# Flag named in the error when the router has no /ipv6 menus (its ipv6 package is disabled).
IP_FAMILIES_FLAG = "--ip-families"


# What a router user's group must allow; 401 (no `rest-api`) and the permission 500s say so.
NEEDED_POLICIES = "read, write, api and rest-api"
# RouterOS's 500 details when the group lacks `api` or `read`/`write` (reference 2.2).
_PERMISSION_DETAILS = ("not enough permissions", "std failure: not allowed")
BACKOFF_START = 0.2
BACKOFF_CAP = 5.0


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """`deadline` bounds every request of one client together (seconds from its creation); the
    default leaves a run ample room inside the CronJob's activeDeadlineSeconds of 240 s."""

    base_url: str
    username: str
    password: str = field(repr=False)
    _: KW_ONLY
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    # --mikrotik-cert-sha256: lowercase hex SHA-256 of the router's DER certificate.
    cert_sha256: str | None = None
    timeout: float = 10.0
    read_attempts: int = 4
    deadline: float = 120.0


# RouterOS ids are `*` and hex digits (docs/routeros-rest.md 5.6); nothing else is ever sent back.
ID_PATTERN = re.compile(r"^\*[0-9A-Fa-f]+$")


def is_router_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.match(value) is not None


class InvalidReply(RouterError):
    """A read whose rows cannot be write targets (an `.id` that is not `*<hex>`, or one `.id`
    twice in a table): the run stops before any write."""


class RouterDeadline(RouterUnreachable):
    """The client's total deadline has passed: nothing more is sent to the router."""


def safe_url(url: str) -> str:
    """The URL without any `user:password@` part, for messages."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}"


class CertificatePinMismatch(ssl.SSLCertVerificationError):
    """The router presented a certificate whose SHA-256 is not the pinned one."""


def parse_fingerprint(value: str) -> str:
    """`AA:BB:…` or plain hex (any case) as 64 lowercase hex digits; ValueError otherwise."""
    digits = value.strip().replace(":", "").lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{value!r} is not a SHA-256 fingerprint (64 hex digits, ':' allowed)")
    return digits


def fingerprint(data: bytes, *, digest: bool = True) -> str:
    """The `AA:BB:…` form of a DER certificate's SHA-256 (or, with `digest=False`, of the
    32-byte digest itself), as openssl prints it."""
    digest_hex = (hashlib.sha256(data).hexdigest() if digest else data.hex()).upper()
    return ":".join(digest_hex[i : i + 2] for i in range(0, len(digest_hex), 2))
    return ":".join(digest_hex[i : i + 2] for i in range(0, len(digest_hex), 2))


class _PinnedContext(ssl.SSLContext):
    """Skips chain and hostname checks but refuses, right after the handshake and before any
    byte of the request (so before the credentials) is sent, a certificate whose fingerprint is
    not the pin. httpcore's sync backend upgrades each connection with `wrap_socket`."""

    pin: str

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        der = sock.getpeercert(binary_form=True) or b""
        if hashlib.sha256(der).hexdigest() != self.pin:
            sock.close()
            raise CertificatePinMismatch(
                f"the router's certificate has SHA-256 {fingerprint(der) if der else '(none)'}, "
                f"not the pinned {fingerprint(bytes.fromhex(self.pin), digest=False)}; check "
                "--mikrotik-cert-sha256 (or MIKROTIK_CERT_SHA256) against the router's "
                "`/certificate print detail` fingerprint; nothing was sent"
            )
        return sock


def _pinned(pin: str) -> ssl.SSLContext:
    context = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.pin = pin
    return context


def _verify(settings: RouterSettings) -> ssl.SSLContext | bool:
    if settings.cert_sha256:
        return _pinned(settings.cert_sha256)
    if settings.insecure_skip_verify:
        log.warning("TLS verification of the router is OFF (--mikrotik-insecure-skip-verify)")
        return False
    if settings.ca_file:
        try:
            return ssl.create_default_context(cafile=settings.ca_file)
        except (OSError, ssl.SSLError, ValueError) as error:
            # Never a traceback, and never a silent fallback to the system CAs: a context that
            # trusts nothing makes every TLS request fail with a RouterAuthError.
            log.error(
                "cannot load --mikrotik-ca-file %s (%s): no router certificate can be trusted",
                settings.ca_file,
                getattr(error, "strerror", None) or error,
            )
            return _trust_nothing()
    return True


def _trust_nothing() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA at all
    return context


def make_http_client(
    settings: RouterSettings, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    if settings.base_url.startswith("http://"):
        log.warning(
            "router URL %s is plain HTTP: the password and firewall travel unencrypted",
            safe_url(settings.base_url),
        )
    return httpx.Client(
        base_url=settings.base_url.rstrip("/"),
        auth=(settings.username, settings.password),
        verify=_verify(settings),
        timeout=settings.timeout,
        transport=transport,
        headers={"Accept": "application/json"},
        # No HTTP(S)_PROXY, SSL_CERT_FILE or .netrc from the environment: the router is reached
        # directly, trusting exactly what the flags say.
        trust_env=False,
    )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    if isinstance(body, Mapping):
        message = str(body.get("message") or response.reason_phrase)
        return f"{message}: {body['detail']}" if body.get("detail") else message
    return response.reason_phrase


class RouterReader:
    """GET-only access to the router.

    `sleep`, `clock` and `rng` are injectable so tests can check the backoff without waiting.
    """

    def __init__(
        self,
        http: httpx.Client,
        settings: RouterSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._attempts = max(1, settings.read_attempts if settings else 4)
        self._deadline = settings.deadline if settings else 120.0
        self._timeout = settings.timeout if settings else 10.0
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._started = clock()
        # Never part of a message: a router (or a proxy) may echo what it was sent.
        self._secrets = secret_forms(settings.username, settings.password) if settings else []
        self.requests: Counter[str] = Counter()
        self._ownership: Ownership | None = None

    def keep_owned(self, ownership: Ownership) -> None:
        """From now on, table reads keep only what `ownership` owns (see the module docstring)."""
        self._ownership = ownership

    def _scrub(self, text: object) -> str:
        clean = str(text)
        for secret in self._secrets:
            clean = clean.replace(secret, "***")
        return clean

    def _remaining(self, method: str, path: str) -> float:
        remaining = self._deadline - (self._clock() - self._started)
        if remaining <= 0:
            raise RouterDeadline(
                method, path, None,
                f"not sent: the router deadline of {self._deadline:g}s has passed",
            )  # fmt: skip
        return remaining

    def _send(
        self, method: str, path: str, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        timeout = min(self._timeout, self._remaining(method, path))
        self.requests[method] += 1
        write = method != "GET"
        try:
            request = self._http.build_request(method, "/" + path, timeout=timeout, **kwargs)
            response = self._http.send(request, stream=stream)
            if stream and response.status_code >= 400:
                response.read()  # the error's detail
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # Nothing was sent: never ambiguous.
            raise RouterUnreachable(
                method, path, None, f"cannot connect ({self._scrub(error)})"
            ) from None
        except httpx.TimeoutException as error:
            what = f"timed out after {timeout:g}s ({self._scrub(error)})"
            raise RouterUnreachable(method, path, None, what, ambiguous=True) from None
        except httpx.ConnectError as error:
            tls = _tls_failure(error)
            if tls is not None:
                raise RouterAuthError(method, path, None, self._scrub(tls)) from None
            raise RouterUnreachable(
                method, path, None, f"cannot connect ({self._scrub(error)})"
            ) from None
        except httpx.TransportError as error:
            raise RouterUnreachable(
                method, path, None, f"connection lost ({self._scrub(error)})", ambiguous=True
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise RouterAuthError(
                method, path, status,
                f"{self._scrub(_detail(response))}; check the router username and password "
                f"and that its group has the {NEEDED_POLICIES} policies",
            )  # fmt: skip
        if status >= 400:
            detail = self._scrub(_detail(response))
            if status >= 500 and any(word in detail for word in _PERMISSION_DETAILS):
                raise RouterAuthError(
                    method, path, status,
                    f"{detail}; the router user's group needs the {NEEDED_POLICIES} policies",
                )  # fmt: skip
            # RouterOS's own 60 s limit, or a server error: the command may or may not have run.
            ambiguous = (status == 400 and "Session closed" in detail) or (write and status >= 500)
            raise RouterError(method, path, status, detail, ambiguous=ambiguous)
        return response

    def _read(
        self,
        path: str,
        params: Mapping[str, str],
        rows: Callable[[httpx.Response], Any] | None = None,
    ) -> Any:
        """The reply's JSON, or with `rows` what it makes of the streamed reply."""
        delay = BACKOFF_START
        for attempt in range(1, self._attempts + 1):
            try:
                if rows is None:
                    return _json(self._send("GET", path, params=params), "GET", path)
                response = self._send("GET", path, stream=True, params=params)
                try:
                    return rows(response)
                except httpx.TransportError as error:  # the reply broke off: read again
                    raise RouterUnreachable(
                        "GET",
                        path,
                        None,
                        f"connection lost ({self._scrub(error)})",
                        ambiguous=True,
                    ) from None
                finally:
                    response.close()
            except (RouterAuthError, RouterDeadline):
                raise
            except RouterError as error:
                retryable = error.status is None or error.status >= 500 or error.ambiguous
                pause = min(delay, BACKOFF_CAP) * self._rng.uniform(0.5, 1.5)
                elapsed = self._clock() - self._started
                late = elapsed + pause >= self._deadline
                if not retryable or attempt == self._attempts or late:
                    raise
                log.warning("%s; retrying in %.2fs (attempt %d)", error, pause, attempt)
            self._sleep(pause)
            delay *= 2
        raise AssertionError("unreachable")

    def time_left(self) -> float:
        """Seconds until the deadline (negative once it has passed), on the client's clock."""
        return self._deadline - (self._clock() - self._started)

    def restart_deadline(self) -> None:
        """Count the deadline from now, e.g. once a run has waited for its Lease."""
        self._started = self._clock()

    def rows(self, table: Table) -> list[dict[str, str]]:
        params = {".proplist": PROPLISTS[table]}
        ownership = self._ownership
        if ownership is None:
            return _rows(self._read(table.value, params), table.value)
        return self._read(  # type: ignore[no-any-return]
            table.value, params, lambda reply: _owned_rows(reply, table, ownership)
        )

    def find(self, table: Table, match: Mapping[str, str]) -> list[dict[str, str]]:
        """Rows whose fields equal `match` (a server-side equality filter)."""
        body = self._read(table.value, {**match, ".proplist": PROPLISTS[table]})
        return _rows(body, table.value)

    def get(self, table: Table, id: str) -> dict[str, str] | None:
        path = f"{table.value}/{id}"
        try:
            row = self._read(path, {".proplist": PROPLISTS[table]})
        except RouterError as error:
            if error.status == 404:
                return None
            raise
        return _row(row, "GET", path)

    def system_resource(self) -> dict[str, str]:
        """The router's RouterOS version and board (`/system/resource`)."""
        body = self._read("system/resource", {".proplist": "version,board-name"})
        if not isinstance(body, dict):
            raise RouterError("GET", "system/resource", None, "the reply is not an object")
        return {str(k): str(v) for k, v in body.items()}

    def read_tables(
        self, tables: Iterable[Table] = tables_of([Family.IPV4])
    ) -> dict[Table, list[dict[str, str]]]:
        """The given tables (IPv4's by default), each row's `.id` checked: a plan only ever
        targets ids read here. A router without the IPv6 menus is an error naming the flag."""
        read: dict[Table, list[dict[str, str]]] = {}
        for table in tables:
            try:
                read[table] = self.rows(table)
            except RouterError as error:
                if table.family is Family.IPV6 and _no_such_menu(error):
                    raise RouterError(
                        "GET", table.value, error.status,
                        f"the router has no /{table.value} menu (is its ipv6 package "
                        f"disabled?): enable IPv6 on the router, or leave ipv6 out of "
                        f"{IP_FAMILIES_FLAG}",
                    ) from error  # fmt: skip
                raise
        self._check_ids(read)
        return read

    @staticmethod
    def _check_ids(tables: Mapping[Table, Sequence[Mapping[str, str]]]) -> None:
        for table, rows in tables.items():
            seen: set[str] = set()
            for row in rows:
                id = row.get(".id")
                if not is_router_id(id):
                    raise InvalidReply(
                        "GET", table.value, 200, f"a row has .id {id!r}, not '*' and hex digits"
                    )
                key = str(id).upper()  # RouterOS parses ids as hex: *1a is *1A
                if key in seen:
                    raise InvalidReply("GET", table.value, 200, f".id {id} appears twice")
                seen.add(key)


def _no_such_menu(error: RouterError) -> bool:
    """RouterOS's answer to a menu that is not there: 400 `no such command or directory`
    (docs/routeros-rest.md, "Unknown path"), or 404 from a router that says less."""
    return error.status == 404 or (
        error.status == 400 and "no such command" in (error.detail or "")
    )


def _tls_failure(error: httpx.ConnectError) -> str | None:
    """What to check when a connection failed in the TLS handshake, else None."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    text = str(cause or error)
    if isinstance(cause, CertificatePinMismatch):
        return str(cause)
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the router's TLS certificate was not accepted ({text}); check --mikrotik-ca-file "
            "(the CA that signed the router's certificate) and that the host in "
            "--mikrotik-base-url is in the certificate"
        )
    if cause is not None or "SSL" in text:
        return (
            f"TLS handshake with the router failed ({text}); check that --mikrotik-base-url "
            "uses https:// for the www-ssl service (http:// for www) and the port"
        )
    return None


def _json(response: httpx.Response, method: str, path: str) -> Any:
    """The reply's JSON; RouterOS may emit raw control characters in strings, so be lenient."""
    try:
        return json.loads(response.content.decode("utf-8", errors="replace"), strict=False)
    except ValueError:
        raise RouterError(
            method, path, response.status_code, "the reply is not JSON", ambiguous=method != "GET"
        ) from None


def _row(body: Any, method: str, path: str) -> dict[str, str]:
    if not isinstance(body, Mapping) or not isinstance(body.get(".id", ""), str):
        raise RouterError(method, path, 200, "the reply is not a JSON object", ambiguous=True)
    return {str(k): str(v) for k, v in body.items()}


def _rows(body: Any, path: str) -> list[dict[str, str]]:
    """The reply's rows as string mappings; RouterOS sends strings, so rows are rarely copied."""
    if not isinstance(body, list):
        raise RouterError("GET", path, 200, "the reply is not a JSON array of objects")
    for index, row in enumerate(body):
        if type(row) is not dict:
            raise RouterError("GET", path, 200, "the reply is not a JSON array of objects")
        if any(type(value) is not str for value in row.values()):
            body[index] = {str(k): str(v) for k, v in row.items()}
    return body


class _IdSet:
    """The `.id`s of one table read, in bounded memory: RouterOS ids are hex counters, so the
    usual ones are bits of a bitmap (at most `BITS` bits, 1 MiB) and only larger ones a set."""

    BITS = 1 << 23

    def __init__(self) -> None:
        self.bits = bytearray()
        self.large: set[int] = set()

    def add(self, id: str) -> bool:
        """Note `id` (valid); False when it was noted before (ids compare as hex numbers)."""
        number = int(id[1:], 16)
        if number >= self.BITS:
            fresh = number not in self.large
            self.large.add(number)
            return fresh
        byte, bit = divmod(number, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1 - len(self.bits), len(self.bits))))
        fresh = not self.bits[byte] & (1 << bit)
        self.bits[byte] |= 1 << bit
        return fresh


def check_id(id: object, ids: _IdSet, path: str) -> None:
    """Raise InvalidReply for an `.id` that is not `*<hex>` or that the table had already."""
    if not is_router_id(id):
        raise InvalidReply("GET", path, 200, f"a row has .id {id!r}, not '*' and hex digits")
    if not ids.add(str(id)):
        raise InvalidReply("GET", path, 200, f".id {id} appears twice")


def _owned_rows(reply: httpx.Response, table: Table, ownership: Ownership) -> list[dict[str, str]]:
    """The rows of a streamed reply the planner needs: owned rows (the marker among them) and,
    in a filter table, an `.id`-only stand-in for each run of foreign rows."""
    head, name = ownership.head, ownership.name_field(table)
    placed = table.is_filter
    kept: list[dict[str, str]] = []
    gap: dict[str, str] | None = None
    ids = _IdSet()
    try:
        for row in iter_rows(reply.iter_bytes()):
            check_id(row.get(".id"), ids, table.value)
            if row.get(name, "").startswith(head):
                if gap is not None:
                    kept.append(gap)
                    gap = None
                kept.append(row)
            elif placed:
                gap = {".id": row[".id"]}
    except NotRows as error:
        raise RouterError("GET", table.value, 200, str(error)) from None
    if gap is not None:
        kept.append(gap)
    return kept


class RouterWriter(RouterReader):
    """Reads plus the four writes a plan needs. Writes are sent once; never retried here."""

    def create(
        self, table: Table, fields: Mapping[str, str], place_before: str | None = None
    ) -> dict[str, str]:
        body = dict(fields)
        if place_before is not None:
            body["place-before"] = place_before
        response = self._send("PUT", table.value, json=body)
        created = _row(_json(response, "PUT", table.value), "PUT", table.value)
        if not created.get(".id"):
            raise RouterError("PUT", table.value, 201, "the reply has no .id", ambiguous=True)
        return created

    def update(self, table: Table, id: str, fields: Mapping[str, str]) -> None:
        """Set `fields`; an empty value removes the property.

        RouterOS may refuse `""` or store it as an empty value (docs/routeros-rest.md 5.5), so a
        removal is sent as `"!name": ""`, the form the maintained Terraform provider uses.
        """
        body = {(name if value else f"!{name}"): value for name, value in fields.items()}
        self._send("PATCH", f"{table.value}/{id}", json=body)

    def delete(self, table: Table, id: str) -> None:
        self._send("DELETE", f"{table.value}/{id}")

    def move(self, table: Table, ids: Sequence[str], destination: str) -> None:
        """Move exactly one rule; `numbers` could otherwise name several, or a position."""
        if len(ids) != 1 or not all(map(is_router_id, (*ids, destination))):
            raise RouterError(
                "POST", f"{table.value}/move", None,
                f"not sent: move needs one rule .id and a destination .id, got {list(ids)} "
                f"before {destination!r}",
            )  # fmt: skip
        self._send(
            "POST",
            f"{table.value}/move",
            json={"numbers": ",".join(ids), "destination": destination},
        )
