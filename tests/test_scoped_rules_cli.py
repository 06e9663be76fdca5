"""`--wan-interface-list` end to end against the RouterOS emulator on 127.0.0.1: the scope fields
are added to and removed from the owned rules in place (PATCH only, same `.id`s, same order)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

from tests.support.router import FILTER, NAT, Router, run_cli

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()
FILTER_SCOPE = {
    "in-interface-list": "WAN",
    "connection-nat-state": "dstnat",
    "dst-address": "10.0.0.5",  # the demo's gateway
}
NAT_SCOPE = {"in-interface-list": "WAN"}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def sync(
    router: Router, path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    result = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, *extra, env=env
    )
    return result.code, result.stdout


def owned(router: Router) -> dict[str, dict[str, str]]:
    return {row["comment"]: row for table in (FILTER, NAT) for row in router.owned(table)}


def methods(router: Router) -> set[str]:
    return {
        "move" if path.endswith("/move") else method for method, path in router.emulator.requests
    }


def scope_of(comment: str) -> dict[str, str]:
    """NAT rules (`P::proto::port`) get the interface list only; filter rules all three."""
    return NAT_SCOPE if comment.count("::") == 3 else FILTER_SCOPE


def filter_order(router: Router) -> list[str]:
    return [row[".id"] for row in router.emulator.rows(FILTER)]


def test_the_flag_is_added_and_removed_in_place(router: Router, example: Path) -> None:
    assert sync(router, example)[0] == 0
    before = owned(router)
    ids = {comment: row[".id"] for comment, row in before.items()}
    order = filter_order(router)
    assert len(ids) == 5  # 2 filter rules, 3 NAT rules
    assert all(set(row).isdisjoint(FILTER_SCOPE) for row in before.values())

    # Adding the flag (here by its environment variable).
    wan = {"WAN_INTERFACE_LIST": "WAN"}
    router.emulator.reset_counts()
    code, out = sync(router, example, "--check", env=wan)
    assert (code, router.writes()) == (2, 0), out
    assert "in-interface-list: (unset) -> 'WAN'" in out
    assert "dst-address: (unset) -> '10.0.0.5'" in out
    assert "Plan: 0 to create, 5 to update, 0 to move, 0 to delete." in out

    router.emulator.reset_counts()
    code, out = sync(router, example, env=wan)
    assert code == 0, out
    assert methods(router) == {"GET", "PATCH"} and router.writes() == 5
    after = owned(router)
    assert {comment: row[".id"] for comment, row in after.items()} == ids
    assert filter_order(router) == order
    for comment, row in after.items():
        scope = scope_of(comment)
        assert {k: row.get(k) for k in FILTER_SCOPE if k in row} == scope, comment
        assert {k: v for k, v in row.items() if k not in scope} == before[comment]

    router.emulator.reset_counts()
    code, out = sync(router, example, "--wan-interface-list", "WAN")
    assert (code, router.writes()) == (0, 0) and "No changes." in out
    assert sync(router, example, "--check", "--wan-interface-list", "WAN")[0] == 0

    # Removing it: the fields disappear (not stored as empty values).
    router.emulator.reset_counts()
    code, out = sync(router, example, "--check")
    assert (code, router.writes()) == (2, 0), out
    assert "in-interface-list: 'WAN' -> (unset)" in out
    assert "connection-nat-state: 'dstnat' -> (unset)" in out
    code, out = sync(router, example, "--check", "--output", "json")
    assert code == 2
    changes = json.loads(out)["router"]["changes"]
    assert {c["key"]: sorted(c["unset"]) for c in changes} == {
        comment: sorted(scope_of(comment)) for comment in ids
    }

    router.emulator.reset_counts()
    code, out = sync(router, example)
    assert code == 0, out
    assert methods(router) == {"GET", "PATCH"} and router.writes() == 5
    assert owned(router) == before
    assert filter_order(router) == order

    router.emulator.reset_counts()
    code, out = sync(router, example)
    assert (code, router.writes()) == (0, 0) and "No changes." in out
    assert sync(router, example, "--check")[0] == 0
