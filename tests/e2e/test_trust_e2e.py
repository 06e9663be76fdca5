"""End-to-end trust rules on the real API server: an ambiguous gateway fails naming every
candidate, and the gateway annotation chooses one (README "Trust and safety")."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.e2e.test_sync_e2e import CCNPS, Cluster, by_comment, cluster, explain
from tests.support.router import NAT, Router

pytestmark = pytest.mark.e2e
__all__ = ["cluster"]  # the fixture, shared with test_sync_e2e

GATEWAY = "router-policy-sync.homelab-helper.benfiola.com/gateway"


def second_service(cluster: Cluster, name: str, app: str, ip: str) -> None:
    """Another LoadBalancer Service in front of the same pods (say, a team's dashboard)."""
    body = {
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": app}, "ports": [{"port": 8443}]},
    }
    cluster.core.create_namespaced_service(cluster.ns, client.V1Service.model_validate(body))
    cluster.set_ip(name, ip)


def test_an_ambiguous_gateway_fails_and_the_annotation_chooses(
    cluster: Cluster, router: Router
) -> None:
    name = cluster.name("web")
    cluster.workload("web", "192.0.2.10")
    second_service(cluster, "dashboard", "web", "192.0.2.20")
    try:
        cluster.policy(name, ["203.0.113.10/32"], "web")
        result = cluster.sync()
        assert result.code == 1, explain(result)
        ready = cluster.ready(name)
        assert (ready["status"], ready["reason"]) == ("False", "DiscoveryFailed")
        assert f"{cluster.ns}/web (192.0.2.10)" in ready["message"]
        assert f"{cluster.ns}/dashboard (192.0.2.20)" in ready["message"]
        assert by_comment(router, NAT) == {}

        cluster.patch(CCNPS, name, {"metadata": {"annotations": {GATEWAY: f"{cluster.ns}/web"}}})
        result = cluster.sync()
        assert result.code == 0, explain(result)
        assert cluster.ready(name)["reason"] == "Synced"
        status = cluster.rp(name)
        assert status is not None
        assert status["status"]["gatewayService"] == f"{cluster.ns}/web"
        assert {row["to-addresses"] for row in by_comment(router, NAT).values()} == {"192.0.2.10"}
    finally:
        cluster.core.delete_namespaced_service("dashboard", cluster.ns)
