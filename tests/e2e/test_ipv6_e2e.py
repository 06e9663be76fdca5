"""End-to-end dual-stack: a LoadBalancer Service whose status has an IPv4 and an IPv6 ingress
address, written through the real kube-apiserver, and a policy with sources of both families.

The RouterPolicy status records both gateway addresses, the router holds both families' objects
above their own markers, a second run writes nothing, and `--check` agrees.
"""

from __future__ import annotations

from kubernetes import client

from tests.e2e.test_sync_e2e import MERGE, Cluster, cluster, explain
from tests.support.router import ADDRESS_LIST, Router

__all__ = ["cluster"]  # the fixture, used by name

FILTER6, NAT6, ADDRESS_LIST6 = (
    "ipv6/firewall/filter", "ipv6/firewall/nat", "ipv6/firewall/address-list"
)  # fmt: skip
MARKER = "router-policy-sync::marker"


def test_a_dual_stack_service_status_syncs_both_families(cluster: Cluster, router: Router) -> None:
    marker6 = router.emulator.seed(FILTER6, {"chain": "forward", "action": "passthrough",
                                             "disabled": "yes", "comment": MARKER})  # fmt: skip
    drop6 = router.emulator.seed(FILTER6, {"chain": "forward", "action": "drop"})
    app = cluster.name("dual")
    cluster.workload(app, None)
    body = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.60"},
                                                    {"ip": "2001:DB8:100::60"}]}}}  # fmt: skip
    cluster.core.patch_namespaced_service_status(app, cluster.ns, body, _content_type=MERGE)
    service = cluster.core.read_namespaced_service_status(app, cluster.ns)
    assert isinstance(service, client.V1Service) and service.status is not None
    assert [i.ip for i in service.status.load_balancer.ingress] == [
        "203.0.113.60",
        "2001:DB8:100::60",
    ]
    name = cluster.name("dual")
    cluster.policy(name, ["198.51.100.60/32", "2001:db8:6::1/128"], app)

    done = cluster.sync("--ip-families", "ipv4,ipv6")
    assert done.code == 0, explain(done)
    found = cluster.rp(name)
    assert found is not None
    status = found["status"]
    assert (status["gatewayIP"], status["gatewayIPv6"]) == ("203.0.113.60", "2001:db8:100::60")
    assert cluster.ready(name)["reason"] == "Synced"
    entries6 = [(r["list"], r["address"]) for r in router.owned(ADDRESS_LIST6)]
    assert entries6 == [(f"router-policy-sync::{name}", "2001:db8:6::1/128")]
    rules6 = {r["comment"]: r for r in router.owned(FILTER6)}
    assert set(rules6) == {f"router-policy-sync::{name}::tcp", f"router-policy-sync::{name}::udp"}
    assert {r["dst-address"] for r in rules6.values()} == {"2001:db8:100::60/128"}
    ids = [r[".id"] for r in router.emulator.rows(FILTER6)]
    assert ids[-2:] == [marker6[".id"], drop6[".id"]]  # the block sits directly above
    assert set(ids[-4:-2]) == {r[".id"] for r in rules6.values()}
    assert router.owned(NAT6) == []
    assert [r["address"] for r in router.owned(ADDRESS_LIST)] == ["198.51.100.60"]

    router.emulator.reset_counts()
    again = cluster.sync("--ip-families", "ipv4,ipv6")
    assert again.code == 0, explain(again)
    assert router.writes() == 0
    assert cluster.sync("--check", "--ip-families", "ipv4,ipv6").code == 0
