"""The mass-removal guard through the command, against the RouterOS emulator on 127.0.0.1:
removing 3 of 4 policies is held back (exit 1) until `--allow-mass-removal`, removing 1 of 4
proceeds, and `--check` reports what a run would hold back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fleet import NAMES, cluster_file, four, policy
from tests.support.router import ADDRESS_LIST, FILTER, NAT, Router, run_cli

TABLES = (FILTER, NAT, ADDRESS_LIST)


def sync(router: Router, path: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, *extra, env=env
    )


def owners(router: Router) -> dict[str, int]:
    """Owned rows per policy, over the three tables."""
    found: dict[str, int] = {}
    for table in TABLES:
        for row in router.owned(table):
            name = (row.get("list") if table == ADDRESS_LIST else row["comment"]) or ""
            policy = name.split("::")[1]
            found[policy] = found.get(policy, 0) + 1
    return found


@pytest.fixture
def synced(router: Router, tmp_path: Path) -> Router:
    result = sync(router, four(tmp_path / "four.yaml"))
    assert result.code == 0, result.stdout + result.stderr
    assert owners(router) == dict.fromkeys(NAMES, 3)  # a filter rule, a NAT rule, an entry each
    return router


def test_removing_three_of_four_is_held_back_and_the_rest_is_applied(
    synced: Router, tmp_path: Path
) -> None:
    router = synced
    # p4 stays and changes its sources: that part of the plan must still be applied
    only_p4 = cluster_file(tmp_path / "p4.yaml", policy("p4", ["203.0.113.44/32"]))
    result = sync(router, only_p4)
    assert result.code == 1, result.stdout + result.stderr
    assert owners(router) == {"p1": 3, "p2": 3, "p3": 3, "p4": 3}
    p4_entries = [r["address"] for r in router.owned(ADDRESS_LIST) if r["list"].endswith("::p4")]
    assert p4_entries == ["203.0.113.44"]
    assert "Held back by the mass-removal guard" in result.stdout
    for name in ("p1", "p2", "p3"):
        assert (
            f"  {name}: 3 to delete (1 ipv4 filter, 1 ipv4 nat, 1 ipv4 address-list)"
            in result.stdout
        )
    assert "held back the removal of 3 of the 4 policies" in result.stdout
    assert "--allow-mass-removal" in result.stderr and "ALLOW_MASS_REMOVAL" in result.stderr

    router.emulator.reset_counts()
    metrics = tmp_path / "metrics.prom"
    again = sync(router, only_p4, "--metrics-file", str(metrics))  # held back again, no writes
    assert (again.code, router.writes()) == (1, 0)
    assert held_back_gauge(metrics) == 9  # 3 objects of each of the 3 policies

    allowed = sync(router, only_p4, "--metrics-file", str(metrics),
                   env={"ALLOW_MASS_REMOVAL": "1"})  # fmt: skip
    assert allowed.code == 0, allowed.stdout + allowed.stderr
    assert owners(router) == {"p4": 3}
    assert "Held back" not in allowed.stdout
    assert held_back_gauge(metrics) == 0


def held_back_gauge(path: Path) -> float:
    """The guard's gauge as Prometheus reads the textfile (prometheus-client's parser)."""
    [family] = [f for f in text_string_to_metric_families(path.read_text())
                if f.name == "router_policy_sync_router_removals_held_back"]  # fmt: skip
    [sample] = family.samples
    return float(sample.value)


def test_the_flag_lets_the_removals_through(synced: Router, tmp_path: Path) -> None:
    only_p4 = cluster_file(tmp_path / "p4.yaml", policy("p4"))
    result = sync(synced, only_p4, "--allow-mass-removal")
    assert result.code == 0, result.stdout + result.stderr
    assert owners(synced) == {"p4": 3}
    assert "Plan: 0 to create, 0 to update, 0 to move, 9 to delete." in result.stdout


def test_removing_one_of_four_proceeds(synced: Router, tmp_path: Path) -> None:
    three = cluster_file(tmp_path / "three.yaml", *(policy(n) for n in ("p2", "p3", "p4")))
    result = sync(synced, three)
    assert result.code == 0, result.stdout + result.stderr
    assert owners(synced) == {"p2": 3, "p3": 3, "p4": 3}


def test_two_of_four_is_not_more_than_half(synced: Router, tmp_path: Path) -> None:
    two = cluster_file(tmp_path / "two.yaml", policy("p3"), policy("p4"))
    assert sync(synced, two).code == 0
    assert owners(synced) == {"p3": 3, "p4": 3}


def test_check_says_a_run_would_hold_them_back(synced: Router, tmp_path: Path) -> None:
    router = synced
    only_p4 = cluster_file(tmp_path / "p4.yaml", policy("p4"))
    router.emulator.reset_counts()
    result = sync(router, only_p4, "--check")
    assert result.code == 1, result.stdout + result.stderr
    assert "a run would hold back the removal of 3 of the 4 policies" in result.stdout
    assert "a run would hold back" in result.stderr and "--allow-mass-removal" in result.stderr
    assert {method for method, _ in router.emulator.requests} == {"GET"}

    document = json.loads(sync(router, only_p4, "--check", "--output", "json").stdout)
    held = document["held_back"]
    assert held["owning_policies"] == 4
    assert [p["policy"] for p in held["policies"]] == ["p1", "p2", "p3"]
    assert held["policies"][0]["deletes"] == {
        "ip/firewall/filter": 1,
        "ip/firewall/nat": 1,
        "ip/firewall/address-list": 1,
    }
    assert document["router"]["changes"] == []

    allowed = sync(router, only_p4, "--check", "--allow-mass-removal")
    assert allowed.code == 2, allowed.stdout
    assert "9 to delete" in allowed.stdout and "Held back" not in allowed.stdout
    assert owners(router) == dict.fromkeys(NAMES, 3)
    assert {method for method, _ in router.emulator.requests} == {"GET"}
