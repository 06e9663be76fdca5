"""End-to-end: the real `sync` command against the session's kube-apiserver and a RouterOS emulator.

Owns the proof of the contract over real API objects: annotated CCNPs become RouterPolicies and
router objects, changes converge in place, removal cleans up, failures are reported per policy,
`--check` writes nothing, status writes keep to /status. Each test has its own namespace and
policy names, and deletes what it made (namespaces stay Terminating: there are no controllers).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from controlplane.plane import ControlPlane
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.router import ADDRESS_LIST, FILTER, NAT, PASSWORD, Result, Router, run_cli

GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = (GROUP, "v1", "routerpolicies")
CCNPS = ("cilium.io", "v2", "ciliumclusterwidenetworkpolicies")
ANNOTATION = f"{GROUP}/sync-with-router"
MERGE = "application/merge-patch+json"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
OLD_TIME = "2020-01-02T03:04:05Z"  # a transition time no run can produce
WEB_PORTS = (("TCP", 80), ("TCP", 443), ("UDP", 53))
TABLES = (FILTER, NAT, ADDRESS_LIST)


def _dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


@dataclass(repr=False)
class Cluster:
    """One test's namespace and objects, with the helpers that create and inspect them."""

    api: client.ApiClient
    plane: ControlPlane
    router: Router
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    policies: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.ns = f"e2e-{self.tag}"
        body = {"metadata": {"name": self.ns}}
        self.core.create_namespace(client.V1Namespace.model_validate(body))

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.tag}"

    def sync(self, *extra: str) -> Result:
        """The command as a CronJob runs it; its Lease lives in this test's namespace."""
        kubeconfig, url = str(self.plane.admin_kubeconfig), self.router.url
        lease = ("--lease-namespace", self.ns)  # ignored by --check, which takes no Lease
        return run_cli(
            "sync", "--kubeconfig", kubeconfig, "--mikrotik-base-url", url, *lease, *extra
        )

    # --- Pods, Services and policies --------------------------------------------------------

    def workload(
        self, app: str, ip: str | None, ports: tuple[tuple[str, int], ...] = WEB_PORTS
    ) -> None:
        """A pod labelled app=<app> and a LoadBalancer Service of the same name in front of it."""
        pod = {
            "metadata": {"name": app, "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
        }
        self.core.create_namespaced_pod(self.ns, client.V1Pod.model_validate(pod))
        # No kubelet runs here: the status a kubelet would write makes the pod Running.
        running = {"status": {"phase": "Running"}}
        self.core.patch_namespaced_pod_status(app, self.ns, running, _content_type=MERGE)
        self.workloads.append(app)
        service = {
            "metadata": {"name": app},
            "spec": {"type": "LoadBalancer", "selector": {"app": app}, "ports": _ports(ports)},
        }
        self.core.create_namespaced_service(self.ns, client.V1Service.model_validate(service))
        if ip is not None:
            self.set_ip(app, ip)

    def set_ip(self, service: str, ip: str) -> None:
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        self.core.patch_namespaced_service_status(service, self.ns, body, _content_type=MERGE)

    def set_ports(self, service: str, ports: tuple[tuple[str, int], ...]) -> None:
        body = {"spec": {"ports": _ports(ports)}}
        self.core.patch_namespaced_service(service, self.ns, body, _content_type=MERGE)

    def policy(self, name: str, sources: list[str], app: str) -> None:
        """An annotated CCNP selecting app=<app> pods of this namespace."""
        body = {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": name, "annotations": {ANNOTATION: "true"}},
            "spec": _spec(self.ns, app, sources),
        }
        self.custom.create_cluster_custom_object(*CCNPS, body)
        self.policies.append(name)

    def ccnp(self, name: str) -> dict[str, Any]:
        return _dict(self.custom.get_cluster_custom_object(*CCNPS, name))

    def patch(self, api: tuple[str, str, str], name: str, body: dict[str, Any]) -> dict[str, Any]:
        return _dict(self.custom.patch_cluster_custom_object(*api, name, body, _content_type=MERGE))

    def respec(self, name: str, app: str, sources: list[str]) -> dict[str, Any]:
        return self.patch(CCNPS, name, {"spec": _spec(self.ns, app, sources)})

    # --- RouterPolicies ---------------------------------------------------------------------

    def rp(self, name: str) -> dict[str, Any] | None:
        try:
            return _dict(self.custom.get_cluster_custom_object(*ROUTER_POLICIES, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def ready(self, name: str) -> dict[str, Any]:
        """The Ready condition of RouterPolicy `name`."""
        found = self.rp(name)
        assert found is not None, f"RouterPolicy {name} is missing"
        (condition,) = [c for c in found["status"]["conditions"] if c["type"] == "Ready"]
        return _dict(condition)

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_cluster_custom_object_status(
            *ROUTER_POLICIES, name, {"status": status}, _content_type=MERGE
        )

    def versions(self) -> dict[str, str]:
        """resourceVersion of every CCNP and RouterPolicy, and of this test's Services and Pods."""
        found = {
            f"{api[2]}/{item['metadata']['name']}": item["metadata"]["resourceVersion"]
            for api in (CCNPS, ROUTER_POLICIES)
            for item in _dict(self.custom.list_cluster_custom_object(*api))["items"]
        }
        services = self.core.list_namespaced_service(self.ns).items
        pods = self.core.list_namespaced_pod(self.ns).items
        for kind, items in (("svc", services), ("pod", pods)):
            found.update({f"{kind}/{o.metadata.name}": o.metadata.resource_version for o in items})
        return found

    def cleanup(self) -> None:
        deletes = [
            lambda api=api, name=name: self.custom.delete_cluster_custom_object(*api, name)
            for name in self.policies
            for api in (CCNPS, ROUTER_POLICIES)
        ]
        for app in self.workloads:
            deletes.append(lambda app=app: self.core.delete_namespaced_pod(app, self.ns))
            deletes.append(lambda app=app: self.core.delete_namespaced_service(app, self.ns))
        for delete in deletes:
            try:
                delete()
            except ApiException as error:
                if error.status != 404:
                    raise
        self.core.delete_namespace(self.ns)  # stays Terminating: there is no namespace controller


def _ports(ports: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [{"name": f"{p.lower()}-{n}", "protocol": p, "port": n} for p, n in ports]


def _spec(namespace: str, app: str, sources: list[str]) -> dict[str, Any]:
    labels = {"app": app, "k8s:io.kubernetes.pod.namespace": namespace}
    return {"endpointSelector": {"matchLabels": labels}, "ingress": [{"fromCIDR": sources}]}


@pytest.fixture
def cluster(
    api_client: client.ApiClient, control_plane: ControlPlane, router: Router
) -> Iterator[Cluster]:
    made = Cluster(api_client, control_plane, router)
    try:
        yield made
    finally:
        made.cleanup()


def by_comment(router: Router, table: str) -> dict[str, dict[str, str]]:
    return {row["comment"]: row for row in router.owned(table)}


def of_policy(router: Router, name: str) -> dict[str, list[dict[str, str]]]:
    """Every owned router row of policy `name`, per table."""
    key = f"router-policy-sync::{name}"
    rules = {
        t: [r for r in router.owned(t) if r["comment"].startswith(key + "::")]
        for t in (FILTER, NAT)
    }
    return {**rules, ADDRESS_LIST: [r for r in router.owned(ADDRESS_LIST) if r["list"] == key]}


def addresses(router: Router, name: str) -> list[str]:
    return sorted(row["address"] for row in of_policy(router, name)[ADDRESS_LIST])


def fields(row: dict[str, str], *names: str) -> tuple[str, ...]:
    return tuple(row.get(name, "") for name in names)


def assert_rfc3339(*values: str) -> None:
    for value in values:
        assert RFC3339.match(value), value
        datetime.fromisoformat(value)


def explain(result: Result) -> str:
    return f"exit {result.code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_annotated_policy_gets_router_policy_and_contract_objects(
    cluster: Cluster, router: Router
) -> None:
    name = cluster.name("web")
    cluster.workload("web", "192.0.2.10")
    cluster.policy(name, ["203.0.113.10/32", "198.51.100.5/32"], "web")
    result = cluster.sync()
    assert result.code == 0, explain(result)

    ccnp, rp = cluster.ccnp(name), cluster.rp(name)
    assert rp is not None
    (owner,) = rp["metadata"]["ownerReferences"]
    uid = ccnp["metadata"]["uid"]
    assert fields(owner, "kind", "name", "uid") == ("CiliumClusterwideNetworkPolicy", name, uid)
    assert owner["controller"] is True
    ready, status = cluster.ready(name), rp["status"]
    assert fields(ready, "status", "reason") == ("True", "Synced")
    generation = ccnp["metadata"]["generation"]
    assert status["observedGeneration"] == ready["observedGeneration"] == generation
    assert status["gatewayIP"] == "192.0.2.10"
    assert_rfc3339(status["lastReconciledTime"], ready["lastTransitionTime"])

    key = f"router-policy-sync::{name}"
    assert addresses(router, name) == ["198.51.100.5", "203.0.113.10"]
    rules = by_comment(router, FILTER)
    names = ("chain", "action", "protocol", "dst-port", "src-address-list")
    assert {c: fields(r, *names) for c, r in rules.items()} == {
        f"{key}::tcp": ("forward", "accept", "tcp", "80,443", key),
        f"{key}::udp": ("forward", "accept", "udp", "53", key),
    }
    ids = [row[".id"] for row in router.emulator.rows(FILTER)]
    block = [rules[f"{key}::tcp"][".id"], rules[f"{key}::udp"][".id"], router.marker_id]
    at = ids.index(block[0])
    assert ids[at : at + 3] == block  # one contiguous block, directly above the marker
    nat_names = (*names, "to-addresses", "to-ports")
    assert {c: fields(r, *nat_names) for c, r in by_comment(router, NAT).items()} == {
        f"{key}::{proto}::{port}": ("dstnat", "dst-nat", proto, port, key, "192.0.2.10", port)
        for proto, port in (("tcp", "80"), ("tcp", "443"), ("udp", "53"))
    }

    router.emulator.reset_counts()
    result = cluster.sync()
    assert (result.code, router.writes()) == (0, 0), explain(result)
    assert "No changes." in result.stdout


def test_sources_ports_and_gateway_changes_converge_in_place(
    cluster: Cluster, router: Router
) -> None:
    name = cluster.name("converge")
    key = f"router-policy-sync::{name}"
    cluster.workload("web", "192.0.2.20")
    cluster.policy(name, ["203.0.113.1/32", "203.0.113.2/32"], "web")
    assert cluster.sync().code == 0

    def ids(table: str) -> dict[str, str]:
        return {row["comment"]: row[".id"] for row in of_policy(router, name)[table]}

    filter_ids, nat_ids = ids(FILTER), ids(NAT)
    changed = cluster.respec(name, "web", ["203.0.113.2/32", "203.0.113.3/32"])
    result = cluster.sync()
    assert result.code == 0, explain(result)
    assert addresses(router, name) == ["203.0.113.2", "203.0.113.3"]
    assert (ids(FILTER), ids(NAT)) == (filter_ids, nat_ids)
    assert cluster.ready(name)["observedGeneration"] == changed["metadata"]["generation"] > 1

    cluster.set_ports("web", (("TCP", 80), ("TCP", 8080), ("UDP", 53)))
    result = cluster.sync()
    assert result.code == 0, explain(result)
    assert ids(FILTER) == filter_ids  # dst-port patched in place
    assert by_comment(router, FILTER)[f"{key}::tcp"]["dst-port"] == "80,8080"
    assert sorted(ids(NAT)) == [f"{key}::tcp::80", f"{key}::tcp::8080", f"{key}::udp::53"]
    for kept in (f"{key}::tcp::80", f"{key}::udp::53"):
        assert ids(NAT)[kept] == nat_ids[kept]

    nat_ids = ids(NAT)
    cluster.set_ip("web", "192.0.2.21")
    router.emulator.reset_counts()
    result = cluster.sync()
    assert result.code == 0, explain(result)
    assert ids(NAT) == nat_ids  # every NAT rule PATCHed, none recreated
    assert {row["to-addresses"] for row in of_policy(router, name)[NAT]} == {"192.0.2.21"}
    assert {method for method, _ in router.emulator.requests} == {"GET", "PATCH"}
    rp = cluster.rp(name)
    assert rp is not None and rp["status"]["gatewayIP"] == "192.0.2.21"


def test_unannotated_or_deleted_policy_is_removed_everywhere(
    cluster: Cluster, router: Router
) -> None:
    keep, unannotated, deleted = (cluster.name(p) for p in ("keep", "unannotated", "deleted"))
    cluster.workload("web", "192.0.2.30")
    for name in (keep, unannotated, deleted):
        cluster.policy(name, ["203.0.113.30/32"], "web")
    assert cluster.sync().code == 0
    before = {name: of_policy(router, name) for name in (keep, deleted)}
    assert all(rows for table in before.values() for rows in table.values())
    empty: dict[str, list[dict[str, str]]] = {table: [] for table in TABLES}

    cluster.patch(CCNPS, unannotated, {"metadata": {"annotations": {ANNOTATION: None}}})
    result = cluster.sync()
    assert result.code == 0, explain(result)
    assert cluster.rp(unannotated) is None
    assert of_policy(router, unannotated) == empty
    assert {name: of_policy(router, name) for name in (keep, deleted)} == before

    cluster.custom.delete_cluster_custom_object(*CCNPS, deleted)
    result = cluster.sync()
    assert result.code == 0, explain(result)
    assert cluster.rp(deleted) is None
    assert of_policy(router, deleted) == empty
    assert of_policy(router, keep) == before[keep]
    assert sum(len(router.owned(table)) for table in TABLES) == 1 + 3 + 2  # keep's objects only
    assert cluster.ready(keep)["reason"] == "Synced"


def test_failures_are_reported_per_policy_and_do_not_block_others(
    cluster: Cluster, router: Router
) -> None:
    valid, wide, no_pod, no_ip = (cluster.name(p) for p in ("valid", "wide", "nopod", "noip"))
    cluster.workload("web", "192.0.2.40")
    cluster.workload("pending", None)
    cluster.policy(valid, ["203.0.113.40/32"], "web")
    cluster.policy(wide, ["203.0.113.41/32", "198.51.100.0/24"], "web")
    cluster.policy(no_pod, ["203.0.113.42/32"], "nothing-runs-this")
    cluster.policy(no_ip, ["203.0.113.43/32"], "pending")
    result = cluster.sync()
    assert result.code == 1, explain(result)

    assert fields(cluster.ready(valid), "status", "reason") == ("True", "Synced")
    assert addresses(router, valid) == ["203.0.113.40"]
    expected = {
        wide: ("ValidationFailed", ("fromCIDR", "198.51.100.0/24")),
        no_pod: ("DiscoveryFailed", ("no running pod matches",)),
        no_ip: ("DiscoveryFailed", (f"{cluster.ns}/pending", "ingress")),
    }
    for name, (reason, words) in expected.items():
        ready = cluster.ready(name)
        assert fields(ready, "status", "reason") == ("False", reason), ready
        assert all(word in ready["message"] for word in words), ready["message"]
        rp = cluster.rp(name)
        assert rp is not None and "gatewayIP" not in rp["status"]
        assert rp["status"]["observedGeneration"] == cluster.ccnp(name)["metadata"]["generation"]
        assert not any(of_policy(router, name).values())


def test_check_writes_nothing_and_reports_drift(cluster: Cluster, router: Router) -> None:
    name = cluster.name("checked")
    cluster.workload("web", "192.0.2.50")
    cluster.policy(name, ["203.0.113.50/32"], "web")
    assert cluster.sync().code == 0

    def check(expected: int) -> Result:
        versions, rows = cluster.versions(), [router.emulator.rows(t) for t in TABLES]
        router.emulator.reset_counts()
        result = cluster.sync("--check")
        assert result.code == expected, explain(result)
        assert {method for method, _ in router.emulator.requests} == {"GET"}
        assert [router.emulator.rows(t) for t in TABLES] == rows
        assert cluster.versions() == versions
        return result

    assert "In sync." in check(0).stdout

    nat = by_comment(router, NAT)[f"router-policy-sync::{name}::tcp::80"][".id"]
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as http:
        body = {"to-addresses": "192.0.2.99"}
        http.patch(f"/ip/firewall/nat/{nat}", json=body).raise_for_status()
    assert "'192.0.2.99' -> '192.0.2.50'" in check(2).stdout
    assert cluster.sync().code == 0
    check(0)

    newcomer = cluster.name("newcomer")
    cluster.policy(newcomer, ["203.0.113.51/32"], "web")
    check(2)
    assert cluster.rp(newcomer) is None
    assert cluster.sync().code == 0
    check(0)

    cluster.patch_status(name, {"gatewayIP": "192.0.2.98"})  # a RouterPolicy that drifted
    check(2)
    assert cluster.sync().code == 0
    check(0)


def test_status_writes_keep_metadata_and_transition_time_moves_only_on_flip(
    cluster: Cluster, router: Router
) -> None:
    name = cluster.name("status")
    cluster.workload("web", "192.0.2.60")
    cluster.policy(name, ["203.0.113.60/32"], "web")
    assert cluster.sync().code == 0
    hand = {"metadata": {"labels": {"team": "net"}, "annotations": {"note": "by hand"}}}
    cluster.patch(ROUTER_POLICIES, name, hand)

    def backdate() -> None:
        """Set both times to OLD, so that a run in the same second still shows what it did."""
        condition = {**cluster.ready(name), "lastTransitionTime": OLD_TIME}
        cluster.patch_status(name, {"conditions": [condition], "lastReconciledTime": OLD_TIME})

    def step(app: str, sources: list[str], code: int, reason: str) -> dict[str, Any]:
        generation = cluster.respec(name, app, sources)["metadata"]["generation"]
        result = cluster.sync()
        assert result.code == code, explain(result)
        ready = cluster.ready(name)
        assert ready["reason"] == reason and ready["observedGeneration"] == generation
        rp = cluster.rp(name)
        assert rp is not None and rp["metadata"]["generation"] == 1
        assert rp["metadata"]["labels"]["team"] == "net"
        assert rp["metadata"]["annotations"] == {"note": "by hand"}
        assert rp["status"]["lastReconciledTime"] != OLD_TIME
        assert_rfc3339(ready["lastTransitionTime"], rp["status"]["lastReconciledTime"])
        return ready

    backdate()
    synced_rows = of_policy(router, name)
    assert step("web", ["203.0.113.60/32"], 0, "Synced")["lastTransitionTime"] == OLD_TIME

    backdate()
    assert step("web", ["198.51.100.0/24"], 1, "ValidationFailed")["lastTransitionTime"] != OLD_TIME
    assert of_policy(router, name) == synced_rows  # a failed policy keeps what it had

    backdate()
    assert (
        step("nobody", ["203.0.113.60/32"], 1, "DiscoveryFailed")["lastTransitionTime"] == OLD_TIME
    )

    backdate()
    assert step("web", ["203.0.113.60/32"], 0, "Synced")["lastTransitionTime"] != OLD_TIME
    assert of_policy(router, name) == synced_rows
