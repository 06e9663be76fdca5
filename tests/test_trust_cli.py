"""The trust rules end to end: the real command against the RouterOS emulator on 127.0.0.1.

Each case writes a cluster as YAML, runs `sync --from-file ... --output json`, and reads both
the policy's would-be status and what the router then holds. The recycled-address case needs a
RouterPolicy status, which `--from-file` has none of, so it runs `run_once` in process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sync_job.router.client import RouterSettings, RouterWriter, make_http_client
from sync_job.run import SyncSettings, run_once
from sync_job.source.snapshot import (
    ANNOTATION,
    GATEWAY_ANNOTATION,
    ClusterSnapshot,
    pod_from_raw,
    service_from_raw,
)
from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import ADDRESS_LIST, NAT, PASSWORD, Router, run_cli, seed_router

NS_KEY = "k8s:io.kubernetes.pod.namespace"


def policy(
    name: str = "web",
    *,
    sources: tuple[str, ...] = ("203.0.113.1/32",),
    to_ports: list[Any] | None = None,
    gateway: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    app: str = "web",
    extra_specs: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    annotations = {ANNOTATION: "true"}
    if gateway:
        annotations[GATEWAY_ANNOTATION] = gateway
    rule: dict[str, Any] = {"fromCIDR": list(sources)}
    if to_ports is not None:
        rule["toPorts"] = to_ports
    spec = {"endpointSelector": {"matchLabels": {"app": app, NS_KEY: "apps"}}, "ingress": [rule]}
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
        "specs": [spec, *extra_specs],
    }


def pod(name: str, app: str = "web", phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "apps", "labels": {"app": app}},
        "status": {"phase": phase},
    }


def lb(name: str, ip: str, app: str = "web", ports: tuple[int, ...] = (443,)) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": app},
            "ports": [{"name": f"p{port}", "port": port} for port in ports],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def sync(router: Router, tmp_path: Path, *documents: Any) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    result = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, "--output", "json"
    )
    return result.code, {p["name"]: p for p in json.loads(result.stdout)["policies"]}


def nat_targets(router: Router) -> set[tuple[str, str]]:
    return {(row["to-addresses"], row["dst-port"]) for row in router.owned(NAT)}


def test_a_private_source_is_left_out_so_nat_cannot_capture_it(
    router: Router, tmp_path: Path
) -> None:
    code, policies = sync(
        router,
        tmp_path,
        policy(sources=("203.0.113.1/32", "192.168.88.20/32")),
        pod("web-0"),
        lb("web", "198.51.100.10"),
    )
    assert code == 0 and policies["web"]["reason"] == "Synced"
    assert "left out 1 private source(s) (192.168.88.20)" in policies["web"]["message"]
    assert [row["address"] for row in router.owned(ADDRESS_LIST)] == ["203.0.113.1"]


def test_two_loadbalancer_services_with_different_addresses_fail_naming_both(
    router: Router, tmp_path: Path
) -> None:
    code, policies = sync(
        router,
        tmp_path,
        policy(),
        pod("web-0"),
        lb("web", "198.51.100.10"),
        lb("dashboard", "198.51.100.20"),
    )
    assert code == 1 and policies["web"]["reason"] == "DiscoveryFailed"
    message = policies["web"]["message"]
    assert "apps/web (198.51.100.10)" in message and "apps/dashboard (198.51.100.20)" in message
    assert router.owned(NAT) == [] and router.writes() == 0


def test_the_gateway_annotation_chooses_the_service(router: Router, tmp_path: Path) -> None:
    code, policies = sync(
        router,
        tmp_path,
        policy(gateway="apps/web"),
        pod("web-0"),
        lb("web", "198.51.100.10"),
        lb("dashboard", "198.51.100.20", ports=(8443,)),
    )
    assert code == 0 and policies["web"]["status"]["gatewayService"] == "apps/web"
    assert nat_targets(router) == {("198.51.100.10", "443")}


def test_a_pending_pod_selects_no_gateway(router: Router, tmp_path: Path) -> None:
    code, policies = sync(
        router, tmp_path, policy(), pod("web-0", phase="Pending"), lb("web", "198.51.100.10")
    )
    assert code == 1 and policies["web"]["reason"] == "DiscoveryFailed"
    assert "no running pod matches" in policies["web"]["message"]


def test_a_loopback_gateway_is_refused(router: Router, tmp_path: Path) -> None:
    code, policies = sync(router, tmp_path, policy(), pod("web-0"), lb("web", "127.0.0.1"))
    assert code == 1 and policies["web"]["reason"] == "ValidationFailed"
    assert '"127.0.0.1" is a loopback address, never a gateway' in policies["web"]["message"]
    assert router.writes() == 0


def test_a_node_selector_rules_source_never_reaches_the_router(
    router: Router, tmp_path: Path
) -> None:
    host_rule = {"nodeSelector": {}, "ingress": [{"fromCIDR": ["203.0.113.77/32"]}]}
    code, _ = sync(
        router,
        tmp_path,
        policy(extra_specs=(host_rule,)),
        pod("web-0"),
        lb("web", "198.51.100.10"),
    )
    assert code == 0
    assert [row["address"] for row in router.owned(ADDRESS_LIST)] == ["203.0.113.1"]


def test_to_ports_443_opens_only_443_of_a_service_with_80_and_443(
    router: Router, tmp_path: Path
) -> None:
    code, policies = sync(
        router,
        tmp_path,
        policy(to_ports=[{"ports": [{"port": "443", "protocol": "TCP"}]}]),
        pod("web-0"),
        lb("web", "198.51.100.10", ports=(80, 443)),
    )
    assert code == 0 and "on tcp 443" in policies["web"]["message"]
    assert nat_targets(router) == {("198.51.100.10", "443")}
    assert {row["dst-port"] for row in router.owned("ip/firewall/filter")} == {"443"}


def test_two_policies_claiming_one_source_and_port_the_later_is_refused(
    router: Router, tmp_path: Path
) -> None:
    code, policies = sync(
        router,
        tmp_path,
        policy("first", created="2026-01-01T00:00:00Z"),
        policy("second", created="2026-03-01T00:00:00Z", app="api"),
        pod("web-0"),
        pod("api-0", app="api"),
        lb("web", "198.51.100.10"),
        lb("api", "198.51.100.30", app="api"),
    )
    assert code == 1
    assert policies["first"]["reason"] == "Synced"
    assert policies["second"]["reason"] == "ValidationFailed"
    assert (
        "already sent to 198.51.100.10 by CiliumClusterwideNetworkPolicy first"
        in (policies["second"]["message"])
    )
    assert nat_targets(router) == {("198.51.100.10", "443")}


def test_a_failed_policys_nat_to_a_recycled_address_is_removed() -> None:
    """web synced to apps/web at 198.51.100.10; its pods are gone and the address is handed to
    apps/other: the NAT rule goes (one DELETE), its list and filter rule stay."""
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    settings = RouterSettings("https://router.test.invalid/rest", "admin", PASSWORD)
    raw = policy()
    live = ClusterSnapshot(
        [raw], [pod_from_raw(pod("web-0"))], [service_from_raw(lb("web", "198.51.100.10"))]
    )
    with make_http_client(settings, transport=emulator.transport()) as http:
        writer = RouterWriter(http, settings)

        def run(snapshot: ClusterSnapshot) -> Any:
            return run_once(
                read_cluster=lambda: snapshot,
                router=writer,
                kube=None,
                settings=SyncSettings(),
                check=False,
                now=lambda: datetime(2026, 12, 1, tzinfo=UTC),
            )

        first = run(live)
        assert first.outcomes[0].gateway_service == "apps/web"
        status = first.statuses["web"]
        recycled = ClusterSnapshot(
            [raw],
            [],
            [service_from_raw(lb("other", "198.51.100.10", app="other"))],
            router_policies={"web": {"status": status}},
        )
        emulator.reset_counts()
        second = run(recycled)
    assert [(c.action.value, c.table.kind) for c in second.plan.changes] == [("delete", "nat")]
    outcome = second.outcomes[0]
    assert outcome.reason.value == "DiscoveryFailed"
    assert "its NAT rules are removed: 198.51.100.10 now belongs to Service apps/other" in (
        outcome.message
    )
    assert second.statuses["web"]["gatewayService"] == "apps/web"
    owned = [r for r in emulator.rows(NAT) if r.get("comment", "").startswith("router-policy")]
    assert owned == []
    assert [r["address"] for r in emulator.rows(ADDRESS_LIST) if r["list"].endswith("::web")] == [
        "203.0.113.1"
    ]


def test_gateway_cidr_limits_the_gateways_and_a_bad_one_is_a_usage_error(
    router: Router, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        yaml.safe_dump_all([policy(), pod("web-0"), lb("web", "198.51.100.10")], sort_keys=False)
    )
    base = ("sync", "--from-file", str(path), "--mikrotik-base-url", router.url, "-o", "json")
    inside = run_cli(*base, "--gateway-cidr", "198.51.100.0/24")
    assert inside.code == 0
    outside = run_cli(*base, env={"GATEWAY_CIDRS": "192.0.2.0/24"})
    (status,) = json.loads(outside.stdout)["policies"]
    assert outside.code == 1 and "--gateway-cidr 192.0.2.0/24" in status["message"]
    bad = run_cli(*base, "--gateway-cidr", "not-a-cidr")
    assert bad.code == 64 and "--gateway-cidr" in bad.stderr
