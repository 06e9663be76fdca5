"""Table reads that keep only what the job owns (`RouterReader.keep_owned`): the planner sees
the same plan as from the whole tables, every `.id` is still checked, and memory does not grow
with the router's foreign rows (measured with tracemalloc: allocations, not time)."""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import example, given

from sync_job.model import Family
from sync_job.router.client import (
    InvalidReply,
    RouterReader,
    RouterSettings,
    _IdSet,
    make_http_client,
)
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table, tables_of
from tests.unit.test_planner_properties import (
    EMPTY_WORLD,
    HARD_WORLD,
    SETTINGS,
    World,
    load,
    make_plan,
    worlds,
    writer,
)

OWN = Ownership()
MARKER = {".id": "*1", "chain": "forward", "comment": "router-policy-sync::marker"}


@SETTINGS
@given(worlds())
@example(EMPTY_WORLD)
@example(HARD_WORLD)
def test_the_plan_from_the_owned_rows_is_the_plan_from_the_whole_tables(world: World) -> None:
    emulator = load(world)
    router, http = writer(emulator)
    with http:
        whole = router.read_tables()
        router.keep_owned(OWN)
        kept = router.read_tables()
    assert make_plan(world, kept) == make_plan(world, whole)
    for table in tables_of([Family.IPV4]):
        owned = [r for r in whole[table] if r.get(OWN.name_field(table), "").startswith(OWN.head)]
        assert [r for r in kept[table] if len(r) > 1] == owned  # every owned row, as read
        if table is not Table.FILTER:
            assert kept[table] == owned  # nothing else


def test_a_run_of_foreign_rules_becomes_one_stand_in() -> None:
    rows = [
        {".id": "*10", "comment": "user 1"},
        {".id": "*11", "comment": "user 2"},
        {".id": "*12", "comment": "router-policy-sync::a::tcp"},
        {".id": "*13"},
        MARKER,
        {".id": "*14", "comment": "drop"},
        {".id": "*15", "comment": "drop 2"},
    ]
    assert read({"ip/firewall/filter": rows})[Table.FILTER] == [
        {".id": "*11"}, rows[2], {".id": "*13"}, MARKER, {".id": "*15"}
    ]  # fmt: skip


def transport(tables: dict[str, list[dict[str, str]]], foreign: int = 0) -> httpx.MockTransport:
    """Serves `tables`; the address list also gets `foreign` entries, generated as the reply
    streams out, so the reply itself is never in memory whole."""

    def entries() -> Iterator[bytes]:
        yield b"["
        rows = tables.get("ip/firewall/address-list", [])
        for i, row in enumerate(rows):
            yield (b"," if i else b"") + json.dumps(row).encode()
        for i in range(foreign):
            yield (b"," if i or rows else b"") + json.dumps({
                ".id": f"*{0x100000 + i:X}", "address": f"100.{i >> 16}.{i >> 8 & 255}.{i & 255}",
                "disabled": "false", "dynamic": "false", "list": f"blocklist-{i % 40}",
                "comment": "imported from a public blocklist",
            }).encode()  # fmt: skip
        yield b"]"

    def respond(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/rest/")
        if path == "ip/firewall/address-list":
            return httpx.Response(200, content=entries())
        return httpx.Response(200, json=tables.get(path, []))

    return httpx.MockTransport(respond)


def read(
    tables: dict[str, list[dict[str, str]]], foreign: int = 0
) -> dict[Table, list[dict[str, str]]]:
    settings = RouterSettings("https://router.invalid/rest", "admin", "pw", read_attempts=1)
    with make_http_client(settings, transport=transport(tables, foreign)) as http:
        reader = RouterReader(http, settings, sleep=lambda _: None, rng=random.Random(0))
        reader.keep_owned(OWN)
        return reader.read_tables()


def peak_of_read(foreign: int) -> int:
    owned = [{".id": f"*{i + 2:X}", "list": "router-policy-sync::web", "address": f"10.0.0.{i}",
              "disabled": "false", "dynamic": "false"} for i in range(200)]  # fmt: skip
    tables = {"ip/firewall/filter": [MARKER], "ip/firewall/address-list": owned}
    tracemalloc.start()
    try:
        result = read(tables, foreign)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result[Table.ADDRESS_LIST] == owned
    return peak


def test_memory_does_not_grow_with_foreign_address_list_entries() -> None:
    none, many = peak_of_read(0), peak_of_read(150_000)
    # the whole reply would be ~22 MB, its rows ~90 MB; what is held is one window and the ids
    assert many - none < 3 * 2**20, (none, many)


@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ([{".id": "*2", "list": "blocklist"}, {".id": "*2", "list": "router-policy-sync::a"}],
         "appears twice"),
        ([{".id": "*a", "list": "x"}, {".id": "*A", "list": "y"}], "appears twice"),
        ([{".id": "*FFFFFFFFF", "list": "x"}, {".id": "*fffffffff", "list": "y"}], "appears twice"),
        ([{".id": "5", "list": "blocklist"}], "not '\\*' and hex digits"),
        ([{"list": "blocklist"}], "not '\\*' and hex digits"),
    ],
)  # fmt: skip
def test_the_ids_of_rows_not_kept_are_checked_all_the_same(
    rows: list[dict[str, str]], why: str
) -> None:
    with pytest.raises(InvalidReply, match=why):
        read({"ip/firewall/filter": [MARKER], "ip/firewall/address-list": rows})


def test_the_id_set_is_exact_for_small_and_large_ids() -> None:
    ids = _IdSet()
    assert all(ids.add(f"*{n:X}") for n in (0, 1, 7, 8, 9, 4096, _IdSet.BITS - 1, _IdSet.BITS))
    assert not any(ids.add(f"*{n:x}") for n in (0, 1, 7, 8, 9, 4096, _IdSet.BITS - 1, _IdSet.BITS))
    assert ids.add("*2") and ids.add("*FFFFFFFFFFFF") and not ids.add("*ffffffffffff")
    assert len(ids.bits) <= _IdSet.BITS // 8
