"""The command against the RouterOS emulator on 127.0.0.1: the issue's acceptance scenario,
exit codes, output formats and failure handling."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.router import ADDRESS_LIST, FILTER, NAT, PASSWORD, Router, run_cli

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()


def sync(router: Router, path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli("sync", "--from-file", str(path), "--mikrotik-base-url", router.url, *extra)
    return result.code, result.stdout, result.stderr


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def by_comment(router: Router, table: str) -> dict[str, dict[str, str]]:
    return {row["comment"]: row for row in router.owned(table)}


def test_first_run_creates_exactly_the_contract_objects(router: Router, example: Path) -> None:
    code, out, _ = sync(router, example)
    assert code == 0, out
    entries = sorted((r["list"], r["address"]) for r in router.owned(ADDRESS_LIST))
    assert entries == [
        ("router-policy-sync::my-policy", a)
        for a in ("192.0.2.100", "198.51.100.5", "203.0.113.10")
    ]
    rules = by_comment(router, FILTER)
    assert {
        k: {f: v[f] for f in ("chain", "action", "protocol", "dst-port", "src-address-list")}
        for k, v in rules.items()
    } == {
        "router-policy-sync::my-policy::tcp": {
            "chain": "forward",
            "action": "accept",
            "protocol": "tcp",
            "dst-port": "80,443",
            "src-address-list": "router-policy-sync::my-policy",
        },
        "router-policy-sync::my-policy::udp": {
            "chain": "forward",
            "action": "accept",
            "protocol": "udp",
            "dst-port": "53",
            "src-address-list": "router-policy-sync::my-policy",
        },
    }
    filter_ids = [row[".id"] for row in router.emulator.rows(FILTER)]
    block = [
        rules["router-policy-sync::my-policy::tcp"][".id"],
        rules["router-policy-sync::my-policy::udp"][".id"],
        router.marker_id,
    ]
    at = filter_ids.index(block[0])
    assert filter_ids[at : at + 3] == block  # contiguous, directly above the marker
    nat = by_comment(router, NAT)
    assert sorted(nat) == [
        f"router-policy-sync::my-policy::{p}" for p in ("tcp::443", "tcp::80", "udp::53")
    ]
    assert {
        k: (
            v["chain"],
            v["action"],
            v["protocol"],
            v["dst-port"],
            v["src-address-list"],
            v["to-addresses"],
            v["to-ports"],
        )
        for k, v in nat.items()
    }["router-policy-sync::my-policy::tcp::443"] == (
        "dstnat",
        "dst-nat",
        "tcp",
        "443",
        "router-policy-sync::my-policy",
        "10.0.0.5",
        "443",
    )
    assert router.writes() == 8
    assert ("POST", "ip/firewall/filter/move") not in router.emulator.requests
    assert "Plan: 8 to create, 0 to update, 0 to move, 0 to delete." in out

    router.emulator.reset_counts()
    code, out, _ = sync(router, example)
    assert (code, router.writes()) == (0, 0)
    assert "No changes." in out
    assert sum(router.emulator.requests.values()) == 3  # one GET per table

    code, out, _ = sync(router, example, "--check")
    assert (code, router.writes()) == (0, 0)
    assert "In sync." in out


def test_hand_edits_are_reported_by_check_and_repaired_in_place(
    router: Router, example: Path
) -> None:
    assert sync(router, example)[0] == 0
    nat, rules = by_comment(router, NAT), by_comment(router, FILTER)
    entry = next(r for r in router.owned(ADDRESS_LIST) if r["address"] == "198.51.100.5")
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as http:
        http.delete(f"/ip/firewall/address-list/{entry['.id']}").raise_for_status()
        tcp80 = nat["router-policy-sync::my-policy::tcp::80"][".id"]
        http.patch(
            f"/ip/firewall/nat/{tcp80}", json={"to-addresses": "10.0.0.99"}
        ).raise_for_status()
        tcp = rules["router-policy-sync::my-policy::tcp"][".id"]
        drop = router.foreign[FILTER][-1][".id"]
        http.post(
            "/ip/firewall/filter/move", json={"numbers": tcp}
        ).raise_for_status()  # to the end
        assert [r[".id"] for r in router.emulator.rows(FILTER)][-2:] == [drop, tcp]
    cluster = list(yaml.safe_load_all(example.read_text()))
    cluster[2]["spec"]["ports"].append({"name": "alt", "port": 8080, "protocol": "TCP"})
    example.write_text(yaml.safe_dump_all(cluster))

    router.emulator.reset_counts()
    code, out, _ = sync(router, example, "--check")
    assert code == 2, out
    assert router.writes() == 0 and {m for m, _ in router.emulator.requests} == {"GET"}
    assert "+ ipv4 address-list router-policy-sync::my-policy 198.51.100.5" in out
    assert (
        "~ ipv4 nat router-policy-sync::my-policy::tcp::80" in out
        and "'10.0.0.99' -> '10.0.0.5'" in out
    )
    assert "↕ ipv4 filter router-policy-sync::my-policy::tcp: move before" in out
    assert (
        "~ ipv4 filter router-policy-sync::my-policy::tcp" in out
        and "'80,443' -> '80,443,8080'" in out
    )
    assert "+ ipv4 nat router-policy-sync::my-policy::tcp::8080" in out
    assert "Plan: 2 to create, 2 to update, 1 to move, 0 to delete." in out

    code, out, _ = sync(router, example)
    assert code == 0, out
    after_nat, after_rules = by_comment(router, NAT), by_comment(router, FILTER)
    assert after_nat["router-policy-sync::my-policy::tcp::80"][".id"] == tcp80  # patched in place
    assert after_nat["router-policy-sync::my-policy::tcp::80"]["to-addresses"] == "10.0.0.5"
    assert after_rules["router-policy-sync::my-policy::tcp"][".id"] == tcp  # moved, not recreated
    ids = [r[".id"] for r in router.emulator.rows(FILTER)]
    assert ids.index(tcp) + 2 == ids.index(router.marker_id)
    assert sync(router, example, "--check")[0] == 0


def test_json_output_is_versioned_and_complete(router: Router, example: Path) -> None:
    code, out, _ = sync(router, example, "--check", "--output", "json")
    assert code == 2
    document = json.loads(out)
    assert document["format_version"] == "1.0" and document["mode"] == "check"
    assert document["drift"] is True
    assert document["router"]["summary"] == {"create": 8, "update": 0, "move": 0, "delete": 0}
    assert document["policies"][0]["reason"] == "Synced"
    assert document["policies"][0]["status"]["conditions"][0]["status"] == "True"
    assert router.writes() == 0


def test_missing_marker_writes_nothing_and_fails_every_policy(
    router: Router, example: Path
) -> None:
    router.emulator.handle(
        "DELETE",
        f"/rest/{FILTER}/{router.marker_id}",
        {},
        b"",
        httpx.BasicAuth("admin", PASSWORD)._auth_header,
    )
    router.emulator.reset_counts()
    code, out, _ = sync(router, example)
    assert code == 1
    assert router.writes() == 0
    assert "my-policy: NOT ready (SyncFailed) no filter rule with comment" in out
    assert "/ip firewall filter add" in out


def test_one_bad_policy_does_not_block_the_others(router: Router, example: Path) -> None:
    bad = yaml.safe_load(EXAMPLE.split("---")[0])
    bad["metadata"]["name"] = "too-wide"
    bad["spec"]["ingress"][0]["fromCIDR"] = ["198.51.100.0/24"]
    example.write_text(EXAMPLE + "---\n" + yaml.safe_dump(bad))
    code, out, _ = sync(router, example)
    assert code == 1
    assert "my-policy: Ready (Synced)" in out
    assert "too-wide: NOT ready (ValidationFailed)" in out and "198.51.100.0/24" in out
    assert not [r for r in router.owned(ADDRESS_LIST) if r["list"].endswith("too-wide")]
    assert len(router.owned(NAT)) == 3


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--from-file", "x.yaml"],  # no router URL
        ["sync", "--mikrotik-base-url", "192.168.88.1"],  # no scheme
        ["sync", "--mikrotik-base-url", "https://r/rest", "--comment-prefix", "a::b"],
        ["sync", "--mikrotik-base-url", "https://r/rest", "--reserved-cidr", "10.0.0.300/8"],
        ["sync", "--mikrotik-base-url", "https://r/rest", "--output", "yaml"],
        ["sync", "--no-such-flag"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_64_never_2(args: list[str]) -> None:
    assert run_cli(*args).code == 64


def test_a_missing_router_url_is_a_usage_error_that_names_the_flag(example: Path) -> None:
    """With a --from-file that exists, only the missing URL can make this a usage error."""
    result = run_cli("sync", "--from-file", str(example), env={"MIKROTIK_BASE_URL": ""})
    assert result.code == 64
    assert "--mikrotik-base-url (or MIKROTIK_BASE_URL) is required" in result.stderr


def test_a_router_url_without_a_scheme_names_the_flag_and_the_value(example: Path) -> None:
    result = run_cli("sync", "--from-file", str(example), "--mikrotik-base-url", "192.168.88.1")
    assert result.code == 64
    assert "--mikrotik-base-url '192.168.88.1' must start with https://" in result.stderr


def test_both_password_sources_is_a_usage_error(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    result = run_cli(
        "sync", "--mikrotik-base-url", "https://r/rest", "--mikrotik-password-file", str(secret)
    )
    assert result.code == 64 and "not both" in result.stderr


def test_password_file_works_and_never_shows(router: Router, example: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    result = run_cli(
        "sync",
        "--from-file",
        str(example),
        "--mikrotik-base-url",
        router.url,
        "--mikrotik-password-file",
        str(secret),
        "--log-level",
        "debug",
        env={"MIKROTIK_PASSWORD": ""},
    )
    assert result.code == 0, result.stderr


def test_unreachable_router_fails_before_any_write(example: Path) -> None:
    result = run_cli(
        "sync",
        "--from-file",
        str(example),
        "--mikrotik-base-url",
        "http://127.0.0.1:9/rest",
        "--mikrotik-timeout",
        "1",
    )
    assert result.code == 1
    assert "nothing was written" in result.stderr and "cannot connect" in result.stderr


def test_wrong_password_says_what_to_check(router: Router, example: Path) -> None:
    result = run_cli(
        "sync",
        "--from-file",
        str(example),
        "--mikrotik-base-url",
        router.url,
        env={"MIKROTIK_PASSWORD": "wrong"},
    )
    assert result.code == 1 and "username and password" in result.stderr
    assert router.writes() == 0


def test_version_and_help() -> None:
    from sync_job import __version__

    assert run_cli("--version").stdout.strip() == __version__
    assert run_cli("version").stdout.strip() == __version__
    assert "sync" in run_cli("--help").stdout


def test_demo_converges_and_second_run_writes_nothing() -> None:
    result = run_cli("demo")
    assert result.code == 0, result.stdout
    assert "router writes in the second run: 0" in result.stdout
    assert "No changes." in result.stdout
