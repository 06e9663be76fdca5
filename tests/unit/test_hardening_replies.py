"""Router replies are validated before they become write targets.

- a table read whose `.id` values are not `*<hex>`, or not unique, stops the run before any
  write (a SyncError, so the command says "nothing was written" and exits 1);
- after an ambiguous create, a row found by identity is adopted only when its identity really
  matches and it is not dynamic;
- `move` sends exactly one valid `.id` and a valid destination `.id`.

The router is an `httpx.MockTransport` on a 127.0.0.1 base URL that answers scripted rows and
records every request, so nothing leaves the process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from sync_job.errors import RouterError, SyncError
from sync_job.model import Action
from sync_job.router.apply import apply
from sync_job.router.client import InvalidReply, RouterSettings, RouterWriter, make_http_client
from sync_job.router.plan import Change, Plan
from sync_job.router.tables import Table
from sync_job.run import SyncSettings, run_once
from sync_job.source.file import load_snapshot

MARKER = {
    ".id": "*1",
    "chain": "forward",
    "action": "passthrough",
    "comment": "router-policy-sync::marker",
    "disabled": "true",
}


class Router:
    """Answers GETs from `tables` (path -> rows) and PUTs with `created`; records requests."""

    def __init__(self, tables: dict[str, list[dict[str, str]]]) -> None:
        self.tables = tables
        self.sent: list[tuple[str, str, object]] = []
        self.fail_put = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/rest/")
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, path, body))
        if request.method == "GET" and path == "system/resource":
            return httpx.Response(200, json={"version": "7.23.7 (long-term)", "board-name": "CHR"})
        if request.method == "GET" and path == "system/resource":
            return httpx.Response(200, json={"version": "7.16.2 (stable)", "board-name": "CHR"})
        if request.method == "GET":
            table = path.split("/*")[0]
            rows = self.tables.get(table, [])
            match = {k: v for k, v in request.url.params.items() if not k.startswith(".")}
            return httpx.Response(
                200, json=[r for r in rows if all(r.get(k) == v for k, v in match.items())]
            )
        if request.method == "PUT" and self.fail_put:
            raise httpx.ReadError("connection lost after sending")
        return httpx.Response(200, json={".id": "*A0", **(body or {})})

    def writes(self) -> list[tuple[str, str, object]]:
        return [s for s in self.sent if s[0] != "GET"]


def writer_for(router: Router) -> tuple[httpx.Client, RouterWriter]:
    settings = RouterSettings("http://127.0.0.1:9/rest", "admin", "pw-not-used-anywhere")
    http = make_http_client(settings, transport=httpx.MockTransport(router))
    return http, RouterWriter(http, settings)


def demo(tmp_path: Path) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text((files("sync_job") / "examples" / "demo.yaml").read_text())
    return path


def run(router: Router, tmp_path: Path) -> None:
    path = demo(tmp_path)
    http, writer = writer_for(router)
    with http:
        run_once(
            read_cluster=lambda: load_snapshot(path),
            router=writer,
            kube=None,
            settings=SyncSettings(),
            check=False,
            now=lambda: datetime.now(UTC),
        )


# -- table reads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id", ["5", "*", "*5,*6", "*zz", "*1 ", "", "router-policy-sync::web::tcp"]
)
def test_an_id_that_is_not_star_hex_stops_the_run_before_any_write(
    tmp_path: Path, bad_id: str
) -> None:
    owned = {".id": bad_id, "chain": "forward", "action": "accept",
             "comment": "router-policy-sync::gone::tcp"}  # fmt: skip
    router = Router({"ip/firewall/filter": [MARKER, owned]})
    with pytest.raises(InvalidReply) as caught:
        run(router, tmp_path)
    assert isinstance(caught.value, SyncError)  # the command: "nothing was written", exit 1
    assert "ip/firewall/filter" in str(caught.value)
    assert router.writes() == []


@pytest.mark.parametrize("table", ["ip/firewall/filter", "ip/firewall/nat"])
def test_an_id_twice_in_one_table_stops_the_run_before_any_write(
    tmp_path: Path, table: str
) -> None:
    rule = {"chain": "dstnat", "action": "dst-nat", "comment": "router-policy-sync::gone::tcp::80"}
    rows = [{".id": "*2", **rule}, {".id": "*2", **rule, "comment": "foreign"}]
    tables = {
        "ip/firewall/filter": [MARKER],
        table: [*([MARKER] if "filter" in table else []), *rows],
    }
    router = Router(tables)
    with pytest.raises(InvalidReply) as caught:
        run(router, tmp_path)
    assert "appears twice" in str(caught.value)
    assert router.writes() == []


def test_ids_that_differ_only_in_case_are_one_id(tmp_path: Path) -> None:
    """RouterOS parses ids as hex, so `*a` and `*A` name one row."""
    rows = [MARKER, {".id": "*a", "chain": "input", "action": "accept"},
            {".id": "*A", "chain": "input", "action": "drop"}]  # fmt: skip
    router = Router({"ip/firewall/filter": rows})
    with pytest.raises(InvalidReply):
        run(router, tmp_path)
    assert router.writes() == []


def test_valid_ids_read_and_apply(tmp_path: Path) -> None:
    router = Router({"ip/firewall/filter": [MARKER]})
    run(router, tmp_path)
    assert router.writes()  # the demo's rows were created


# -- adoption after an ambiguous create -----------------------------------------------------

CREATE = Change(
    action=Action.CREATE,
    table=Table.FILTER,
    key="router-policy-sync::web::tcp",
    policy="web",
    reason="missing",
    after={"chain": "forward", "action": "accept", "comment": "router-policy-sync::web::tcp"},
    destination="router-policy-sync::marker",
    destination_id="*1",
)
ENTRY = Change(
    action=Action.CREATE,
    table=Table.ADDRESS_LIST,
    key="router-policy-sync::web 192.0.2.1",
    policy="web",
    reason="missing",
    after={"list": "router-policy-sync::web", "address": "192.0.2.1"},
)


def puts(router: Router) -> int:
    return sum(1 for method, _, _ in router.sent if method == "PUT")


def test_a_dynamic_row_with_the_comment_is_not_adopted() -> None:
    found = {".id": "*B1", **CREATE.after, "dynamic": "true"}
    router = Router({"ip/firewall/filter": [MARKER, found]})
    router.fail_put = True
    http, writer = writer_for(router)
    with http:
        result = apply(Plan((CREATE,)), writer)
    assert puts(router) == 2  # not adopted: the create was sent once more
    assert not result.ok  # (which also failed, the router still dropping the connection)


def test_a_row_whose_identity_differs_is_not_adopted_whatever_the_filter_said() -> None:
    """A router (or proxy) that ignores the query filter answers every row."""
    other = {".id": "*B2", "chain": "forward", "action": "accept", "comment": "someone else"}
    router = Router({"ip/firewall/filter": [MARKER, other]})
    router.fail_put = True
    http, writer = writer_for(router)
    writer.find = lambda table, match: [other]  # type: ignore[method-assign]
    with http:
        result = apply(Plan((CREATE,)), writer)
    assert puts(router) == 2
    assert not result.ok


def test_a_row_with_an_invalid_id_is_not_adopted() -> None:
    found = {".id": "web", **CREATE.after}
    router = Router({"ip/firewall/filter": [MARKER, found]})
    router.fail_put = True
    http, writer = writer_for(router)
    with http:
        apply(Plan((CREATE,)), writer)
    assert puts(router) == 2


def test_the_created_row_is_adopted_and_not_sent_again() -> None:
    found = {".id": "*B3", **CREATE.after}
    entry = {".id": "*B4", "list": "router-policy-sync::web", "address": "192.0.2.1/32"}
    router = Router({"ip/firewall/filter": [MARKER, found], "ip/firewall/address-list": []})
    router.fail_put = True
    http, writer = writer_for(router)
    writer_find = writer.find
    # the address-list filter as RouterOS applies it (the stored form has no /32)
    writer.find = lambda table, match: (  # type: ignore[method-assign]
        [entry] if table is Table.ADDRESS_LIST else writer_find(table, match)
    )
    with http:
        result = apply(Plan((ENTRY, CREATE)), writer)
    assert puts(router) == 2  # one PUT each, both adopted
    assert result.ok, result.failed


# -- move -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "destination"),
    [(["*2", "*3"], "*1"), ([], "*1"), (["2"], "*1"), (["*2"], "0"), (["*2"], "None"),
     (["*2,*3"], "*1")],
)  # fmt: skip
def test_move_sends_one_valid_id_or_nothing(ids: list[str], destination: str) -> None:
    router = Router({})
    http, writer = writer_for(router)
    with http, pytest.raises(RouterError) as caught:
        writer.move(Table.FILTER, ids, destination)
    assert "not sent" in str(caught.value)
    assert router.sent == []


def test_a_valid_move_is_sent_with_its_one_id() -> None:
    router = Router({})
    http, writer = writer_for(router)
    with http:
        writer.move(Table.FILTER, ["*2"], "*1")
    assert router.sent == [("POST", "ip/firewall/filter/move",
                            {"numbers": "*2", "destination": "*1"})]  # fmt: skip
