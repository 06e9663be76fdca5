"""Dual-stack through the command, as a user runs it (README "IPv6 and dual-stack").

A policy with IPv4 and IPv6 sources and a LoadBalancer Service with both ingress addresses,
against the emulator seeded like a default-configuration router in both families: the first run
creates both families' objects, the second writes nothing, `--check` agrees, and hand edits in
the IPv6 tables are reported by `--check` and repaired in place. Each family's marker is its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import (
    ADDRESS_LIST,
    FILTER,
    NAT,
    PASSWORD,
    Router,
    assert_foreign_unchanged,
    run_cli,
    seed_router,
)

FILTER6, NAT6, ADDRESS_LIST6 = (
    "ipv6/firewall/filter", "ipv6/firewall/nat", "ipv6/firewall/address-list"
)  # fmt: skip
MARKER = "router-policy-sync::marker"
ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"

CLUSTER = [
    {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "web", "annotations": {ANNOTATION: "true"}},
        "spec": {
            "endpointSelector": {
                "matchLabels": {"app": "web", "k8s:io.kubernetes.pod.namespace": "default"}
            },
            "ingress": [
                {"fromCIDR": ["203.0.113.10/32", "2001:db8:5::10/128", "2001:DB8:5::11/128"]}
            ],
        },
    },
    {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "legacy", "annotations": {ANNOTATION: "true"}},
        "spec": {
            "endpointSelector": {
                "matchLabels": {"app": "legacy", "k8s:io.kubernetes.pod.namespace": "default"}
            },
            "ingress": [{"fromCIDR": ["198.51.100.20/32"]}],
        },
    },
    *[
        doc
        for app, ips in (("web", ["10.0.0.5", "2001:db8:100::50"]), ("legacy", ["10.0.0.6"]))
        for doc in (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{app}-0", "namespace": "default", "labels": {"app": app}},
                "status": {"phase": "Running"},
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": app, "namespace": "default"},
                "spec": {
                    "type": "LoadBalancer",
                    "ipFamilyPolicy": "PreferDualStack",
                    "selector": {"app": app},
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP"},
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                    ],
                },
                "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
            },
        )
    ],
]


def seed_ipv6(emulator: RouterOSEmulator, foreign: dict[str, list[dict[str, str]]]) -> str:
    """IPv6 defaults like RouterOS's defconf: accepts, the marker, a final drop; a NAT66 rule."""
    for table in (FILTER6, NAT6, ADDRESS_LIST6):
        foreign[table] = []

    def add(table: str, fields: dict[str, str]) -> None:
        foreign[table].append(emulator.seed(table, fields))

    add(FILTER6, {"chain": "forward", "action": "accept", "protocol": "icmpv6",
                  "comment": "defconf: accept ICMPv6"})  # fmt: skip
    marker = emulator.seed(FILTER6, {"chain": "forward", "action": "passthrough",
                                     "disabled": "yes", "comment": MARKER})  # fmt: skip
    add(FILTER6, {"chain": "forward", "action": "drop", "in-interface-list": "WAN",
                  "comment": "defconf: drop everything else not coming from LAN"})  # fmt: skip
    add(NAT6, {"chain": "srcnat", "action": "masquerade", "out-interface-list": "WAN"})
    add(ADDRESS_LIST6, {"list": "bad_ipv6", "address": "2001:db8:dead::/48"})
    add(ADDRESS_LIST6, {"list": "router-policy-sync", "address": "2001:db8::67"})
    return str(marker[".id"])


@pytest.fixture
def dual() -> Iterator[tuple[Router, str]]:
    emulator = RouterOSEmulator("admin", PASSWORD)
    foreign, marker_id = seed_router(emulator)
    marker6 = seed_ipv6(emulator, foreign)
    with emulator.serve() as url:
        yield Router(emulator, url, foreign, marker_id), marker6
    assert_foreign_unchanged(emulator, foreign)


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(CLUSTER))
    return path


def sync(router: Router, cluster: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli(
        "sync", "--from-file", str(cluster), "--mikrotik-base-url", router.url,
        "--ip-families", "ipv4,ipv6", *extra,
    )  # fmt: skip
    return result.code, result.stdout, result.stderr


def by_comment(router: Router, table: str) -> dict[str, dict[str, str]]:
    return {row["comment"]: row for row in router.owned(table)}


def test_a_dual_stack_policy_syncs_both_families_then_nothing(
    dual: tuple[Router, str], cluster: Path
) -> None:
    router, marker6 = dual
    code, out, err = sync(router, cluster)
    assert code == 0, out + err
    assert sorted((r["list"], r["address"]) for r in router.owned(ADDRESS_LIST6)) == [
        ("router-policy-sync::web", "2001:db8:5::10/128"),
        ("router-policy-sync::web", "2001:db8:5::11/128"),
    ]
    rules6 = by_comment(router, FILTER6)
    assert sorted(rules6) == ["router-policy-sync::web::tcp", "router-policy-sync::web::udp"]
    tcp = rules6["router-policy-sync::web::tcp"]
    assert {k: tcp[k] for k in ("chain", "action", "protocol", "dst-port", "src-address-list",
                                "dst-address")} == {
        "chain": "forward", "action": "accept", "protocol": "tcp", "dst-port": "443",
        "src-address-list": "router-policy-sync::web", "dst-address": "2001:db8:100::50/128",
    }  # fmt: skip
    # one block directly above the IPv6 marker
    ids = [r[".id"] for r in router.emulator.rows(FILTER6)]
    at = ids.index(marker6)
    assert set(ids[at - 2 : at]) == {r[".id"] for r in rules6.values()}
    assert router.owned(NAT6) == []
    # IPv4 side: both policies, as before; the IPv4-only policy has nothing in IPv6
    assert sorted(r["address"] for r in router.owned(ADDRESS_LIST)) == [
        "198.51.100.20",
        "203.0.113.10",
    ]
    assert len(router.owned(NAT)) == 4 and len(router.owned(FILTER)) == 4
    assert not any("legacy" in r["list"] for r in router.owned(ADDRESS_LIST6))

    router.emulator.reset_counts()
    code, out, _ = sync(router, cluster)
    assert code == 0 and "No changes." in out
    assert router.writes() == 0
    # the tables of both families are read; nothing is written
    reads = {path for method, path in router.emulator.requests if method == "GET"}
    assert {FILTER, NAT, ADDRESS_LIST, FILTER6, NAT6, ADDRESS_LIST6} <= reads
    assert sync(router, cluster, "--check")[0] == 0


def test_the_json_plan_names_each_change_s_family_and_the_ipv6_gateway(
    dual: tuple[Router, str], cluster: Path
) -> None:
    router, _ = dual
    code, out, _ = sync(router, cluster, "--check", "--output", "json")
    assert code == 2
    document = json.loads(out)
    changes = document["router"]["changes"]
    assert {(c["family"], c["table"]) for c in changes} == {
        ("ipv4", "ip/firewall/address-list"), ("ipv4", "ip/firewall/filter"),
        ("ipv4", "ip/firewall/nat"), ("ipv6", "ipv6/firewall/address-list"),
        ("ipv6", "ipv6/firewall/filter"),
    }  # fmt: skip
    web = next(p for p in document["policies"] if p["name"] == "web")
    assert (web["gatewayIP"], web["gatewayIPv6"]) == ("10.0.0.5", "2001:db8:100::50")
    text = sync(router, cluster, "--check")[1]
    assert (
        "+ ipv6 filter router-policy-sync::web::tcp (before router-policy-sync::web::udp)" in text
    )
    assert "+ ipv6 address-list router-policy-sync::web 2001:db8:5::10/128" in text
    assert "+ ipv6 filter router-policy-sync::web::udp (before router-policy-sync::marker)" in text


def test_hand_edits_in_the_ipv6_tables_are_reported_by_check_and_repaired_in_place(
    dual: tuple[Router, str], cluster: Path
) -> None:
    router, marker6 = dual
    assert sync(router, cluster)[0] == 0
    rules = by_comment(router, FILTER6)
    tcp, udp = rules["router-policy-sync::web::tcp"], rules["router-policy-sync::web::udp"]
    entry = next(r for r in router.owned(ADDRESS_LIST6) if r["address"] == "2001:db8:5::11/128")
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as http:
        http.delete(f"/{ADDRESS_LIST6}/{entry['.id']}").raise_for_status()
        http.patch(f"/{FILTER6}/{tcp['.id']}", json={"dst-address": "2001:db8:100::99"})
        http.patch(f"/{FILTER6}/{udp['.id']}", json={"disabled": "yes"}).raise_for_status()
        http.post(f"/{FILTER6}/move", json={"numbers": tcp[".id"]}).raise_for_status()  # to end

    router.emulator.reset_counts()
    code, out, _ = sync(router, cluster, "--check")
    assert code == 2, out
    assert {method for method, _ in router.emulator.requests} == {"GET"}
    assert "+ ipv6 address-list router-policy-sync::web 2001:db8:5::11/128" in out
    assert "~ ipv6 filter router-policy-sync::web::tcp" in out
    assert "dst-address: '2001:db8:100::99/128' -> '2001:db8:100::50/128'" in out
    assert "disabled: 'true' -> 'false'" in out
    assert "↕ ipv6 filter router-policy-sync::web::tcp: move before" in out
    assert "ipv4" not in out.split("Policies:")[0]  # the IPv4 side is untouched

    code, out, _ = sync(router, cluster)
    assert code == 0, out
    after = by_comment(router, FILTER6)
    assert after["router-policy-sync::web::tcp"][".id"] == tcp[".id"]  # patched and moved
    assert after["router-policy-sync::web::tcp"]["dst-address"] == "2001:db8:100::50/128"
    assert after["router-policy-sync::web::udp"][".id"] == udp[".id"]
    assert after["router-policy-sync::web::udp"].get("disabled") == "false"
    ids = [r[".id"] for r in router.emulator.rows(FILTER6)]
    assert ids[ids.index(marker6) - 2 : ids.index(marker6)] == [tcp[".id"], udp[".id"]]
    assert sync(router, cluster, "--check")[0] == 0


def test_a_missing_ipv6_marker_stops_only_the_policies_that_need_ipv6(
    dual: tuple[Router, str], cluster: Path
) -> None:
    router, marker6 = dual
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as http:
        http.delete(f"/{FILTER6}/{marker6}").raise_for_status()
    code, out, _ = sync(router, cluster, "--output", "json")
    assert code == 1
    document = json.loads(out)
    reasons = {p["name"]: (p["reason"], p["message"]) for p in document["policies"]}
    assert reasons["legacy"][0] == "Synced", reasons
    assert reasons["web"][0] == "SyncFailed"
    assert "no IPv6 filter rule with comment 'router-policy-sync::marker'" in reasons["web"][1]
    assert "`/ipv6 firewall filter add chain=forward action=passthrough" in reasons["web"][1]
    # nothing written in IPv6; the IPv4-only policy synced; the failed one kept nothing new
    assert router.owned(FILTER6) == [] and router.owned(ADDRESS_LIST6) == []
    assert [r["address"] for r in router.owned(ADDRESS_LIST)] == ["198.51.100.20"]
    text = sync(router, cluster, "--check")[1]
    assert "Router: nothing will be written to the ipv6 menus:" in text
    # restored marker (as a user would add it): the next run syncs web in both families
    router.emulator.seed(FILTER6, {"chain": "forward", "action": "passthrough", "comment": MARKER})
    assert sync(router, cluster)[0] == 0
    assert len(router.owned(FILTER6)) == 2 and len(router.owned(ADDRESS_LIST)) == 2


def test_a_router_without_the_ipv6_package_is_a_clear_error_naming_the_flag(
    dual: tuple[Router, str], cluster: Path
) -> None:
    router, _ = dual
    router.emulator.ipv6_package = False
    code, _, err = sync(router, cluster)
    assert code == 1
    assert "the router has no /ipv6/firewall/filter menu (is its ipv6 package disabled?)" in err
    assert "leave ipv6 out of --ip-families" in err
    assert router.writes() == 0
    # IPv4 alone never asks for the /ipv6 menus
    router.emulator.reset_counts()
    ipv4 = run_cli("sync", "--from-file", str(cluster), "--mikrotik-base-url", router.url,
                   "--check", "--output", "json")  # fmt: skip
    assert ipv4.code == 1  # web's IPv6 sources are refused without ipv6 in the flag
    web = next(p for p in json.loads(ipv4.stdout)["policies"] if p["name"] == "web")
    assert "add ipv6 to --ip-families" in web["message"]
    assert not any(path.startswith("ipv6/") for _, path in router.emulator.requests)


def test_a_bad_ip_families_value_is_a_usage_error(dual: tuple[Router, str], cluster: Path) -> None:
    router, _ = dual
    result = run_cli(
        "sync", "--from-file", str(cluster), "--mikrotik-base-url", router.url, "--check",
        env={"IP_FAMILIES": "ipv4,ipv5"},
    )  # fmt: skip
    assert result.code == 64
    assert "--ip-families 'ipv4,ipv5': expected ipv4, ipv6 or ipv4,ipv6 (ipv5 is not a family)" in (
        result.stderr
    )
    assert router.writes() == 0
