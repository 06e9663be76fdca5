"""RouterOS REST client: `RouterReader` reads the three firewall tables, `RouterWriter` adds writes.

`--check` is handed a `RouterReader`, which has no method that could change the router. Reads are
retried with capped, jittered exponential backoff on connection errors, timeouts and 5xx; writes
are never retried here (the applier decides after re-reading). Every httpx failure becomes a
`RouterError` naming the request; credentials are never part of a message.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from sync_job.errors import RouterAuthError, RouterError, RouterUnreachable
from sync_job.model import Table

log = logging.getLogger(__name__)

# Only what the planner compares or needs to place rules; a 50,000-entry address list read
# without `.proplist` is several times larger (creation-time, counters, flags).
PROPLISTS: Mapping[Table, str] = {
    Table.FILTER: ".id,chain,action,protocol,dst-port,src-address-list,comment,disabled,dynamic",
    Table.NAT: ".id,chain,action,protocol,dst-port,src-address-list,to-addresses,to-ports,"
    "comment,disabled,dynamic",
    Table.ADDRESS_LIST: ".id,list,address,disabled,dynamic",
}


@dataclass(frozen=True, slots=True)
class RouterSettings:
    base_url: str
    username: str
    password: str
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout: float = 10.0
    read_attempts: int = 4
    deadline: float = 120.0


def _verify(settings: RouterSettings) -> ssl.SSLContext | bool:
    if settings.insecure_skip_verify:
        log.warning("TLS verification of the router is OFF (--mikrotik-insecure-skip-verify)")
        return False
    if settings.ca_file:
        return ssl.create_default_context(cafile=settings.ca_file)
    return True


def make_http_client(
    settings: RouterSettings, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    if settings.base_url.startswith("http://"):
        log.warning(
            "router URL %s is plain HTTP: the password and firewall travel unencrypted",
            settings.base_url,
        )
    return httpx.Client(
        base_url=settings.base_url.rstrip("/"),
        auth=(settings.username, settings.password),
        verify=_verify(settings),
        timeout=settings.timeout,
        transport=transport,
        headers={"Accept": "application/json"},
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
    """GET-only access to the router."""

    def __init__(self, http: httpx.Client, settings: RouterSettings | None = None) -> None:
        self._http = http
        self._attempts = settings.read_attempts if settings else 4
        self._deadline = settings.deadline if settings else 120.0
        self._started = time.monotonic()
        self.requests: Counter[str] = Counter()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests[method] += 1
        try:
            response = self._http.request(method, "/" + path, **kwargs)
        except httpx.TimeoutException as error:
            raise RouterUnreachable(
                method, path, None, f"timed out ({error})", ambiguous=True
            ) from None
        except httpx.ConnectError as error:
            if isinstance(error.__cause__ or error.__context__, ssl.SSLError) or "CERTIFICATE" in (
                str(error)
            ):
                raise RouterAuthError(
                    method, path, None,
                    f"TLS handshake failed ({error}); check --mikrotik-ca-file",
                ) from None  # fmt: skip
            raise RouterUnreachable(method, path, None, f"cannot connect ({error})") from None
        except httpx.TransportError as error:
            raise RouterUnreachable(
                method, path, None, f"connection lost ({error})", ambiguous=True
            ) from None
        if response.status_code in (401, 403):
            raise RouterAuthError(
                method, path, response.status_code,
                f"{_detail(response)}; check the router username and password and that its "
                "group has the read, write, api and rest-api policies",
            )  # fmt: skip
        if response.status_code >= 400:
            detail = _detail(response)
            # RouterOS's own 60 s limit: the command may or may not have run.
            ambiguous = response.status_code == 400 and "Session closed" in detail
            raise RouterError(method, path, response.status_code, detail, ambiguous=ambiguous)
        return response

    def _read(self, path: str, params: Mapping[str, str]) -> Any:
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                response = self._send("GET", path, params=params)
                return json.loads(response.content)
            except RouterAuthError:
                raise
            except RouterError as error:
                retryable = error.status is None or error.status >= 500
                late = time.monotonic() - self._started + delay > self._deadline
                if not retryable or attempt == self._attempts or late:
                    raise
                log.warning("%s; retrying in %.1fs (attempt %d)", error, delay, attempt)
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay *= 2
        raise AssertionError("unreachable")

    def rows(self, table: Table) -> list[dict[str, str]]:
        body = self._read(table.value, {".proplist": PROPLISTS[table]})
        if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
            raise RouterError("GET", table.value, 200, "the reply is not a JSON array of objects")
        return [{str(k): str(v) for k, v in row.items()} for row in body]

    def find(self, table: Table, match: Mapping[str, str]) -> list[dict[str, str]]:
        """Rows whose fields equal `match` (a server-side equality filter)."""
        body = self._read(table.value, {**match, ".proplist": PROPLISTS[table]})
        return [{str(k): str(v) for k, v in row.items()} for row in body or []]

    def get(self, table: Table, id: str) -> dict[str, str] | None:
        try:
            row = self._read(f"{table.value}/{id}", {".proplist": PROPLISTS[table]})
        except RouterError as error:
            if error.status == 404:
                return None
            raise
        return {str(k): str(v) for k, v in row.items()}

    def read_tables(self) -> dict[Table, list[dict[str, str]]]:
        return {table: self.rows(table) for table in Table}


class RouterWriter(RouterReader):
    """Reads plus the four writes a plan needs. Writes are sent once; never retried here."""

    def create(
        self, table: Table, fields: Mapping[str, str], place_before: str | None = None
    ) -> dict[str, str]:
        body = dict(fields)
        if place_before is not None:
            body["place-before"] = place_before
        created = self._send("PUT", table.value, json=body).json()
        return {str(k): str(v) for k, v in created.items()}

    def update(self, table: Table, id: str, fields: Mapping[str, str]) -> None:
        self._send("PATCH", f"{table.value}/{id}", json=dict(fields))

    def delete(self, table: Table, id: str) -> None:
        self._send("DELETE", f"{table.value}/{id}")

    def move(self, table: Table, ids: Sequence[str], destination: str) -> None:
        self._send(
            "POST",
            f"{table.value}/move",
            json={"numbers": ",".join(ids), "destination": destination},
        )
