"""What reaches the router is exactly what the policy's author meant (README "Trust and safety").

Table tests through `evaluate` (and the planner for recycled addresses): private sources left
out, one unambiguous gateway, gateway addresses checked, sources scoped per rule as Cilium scopes
them (selector, nodeSelector, toPorts), overlapping claims refused, and a failed policy's NAT to
an address now owned by another Service removed.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from sync_job.model import PolicyOutcome, Reason, ServicePort
from sync_job.router.ownership import Ownership
from sync_job.router.planner import plan_router
from sync_job.router.tables import Table
from sync_job.source.evaluate import evaluate, released_addresses
from sync_job.source.snapshot import (
    ANNOTATION,
    GATEWAY_ANNOTATION,
    ClusterSnapshot,
    pod_from_raw,
    service_from_raw,
)

NS_KEY = "k8s:io.kubernetes.pod.namespace"


def ccnp(
    name: str = "web",
    *,
    ingress: list[dict[str, Any]] | None = None,
    selector: dict[str, str] | None = None,
    specs: list[dict[str, Any]] | None = None,
    gateway: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    annotations = {ANNOTATION: "true"}
    if gateway is not None:
        annotations[GATEWAY_ANNOTATION] = gateway
    raw: dict[str, Any] = {
        "metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
    }
    if specs is not None:
        raw["specs"] = specs
    else:
        raw["spec"] = {
            "endpointSelector": {"matchLabels": selector or {"app": "web", NS_KEY: "apps"}},
            "ingress": ingress if ingress is not None else [{"fromCIDR": ["203.0.113.1/32"]}],
        }
    return raw


def pod(name: str, labels: dict[str, str], phase: str = "Running", **spec: Any) -> Any:
    return pod_from_raw(
        {
            "metadata": {"name": name, "namespace": "apps", "labels": labels},
            "spec": spec,
            "status": {"phase": phase},
        }
    )


def lb(name: str, ip: str | None, selector: dict[str, str], ports: list[Any] | None = None) -> Any:
    return service_from_raw(
        {
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {
                "type": "LoadBalancer",
                "selector": selector,
                "ports": ports or [{"port": 443, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
        }
    )


WEB = pod("web-0", {"app": "web"})
GATEWAY = lb("web", "198.51.100.10", {"app": "web"})


def outcome_of(
    *policies: dict[str, Any], pods: Any = (WEB,), services: Any = (GATEWAY,), **kw: Any
):  # type: ignore[no-untyped-def]
    outcomes, targets = evaluate(ClusterSnapshot(list(policies), list(pods), list(services)), **kw)
    return {o.name: o for o in outcomes}, {t.name: t for t in targets}


# -- private space -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "private",
    ["10.1.2.3", "172.16.0.9", "172.31.255.1", "192.168.1.10", "100.64.0.1", "192.0.0.8",
     "198.18.0.1", "198.19.255.254"],
)  # fmt: skip
def test_private_sources_are_left_out_and_the_status_says_so(private: str) -> None:
    outcomes, targets = outcome_of(
        ccnp(ingress=[{"fromCIDR": ["203.0.113.1/32", f"{private}/32"]}])
    )
    assert targets["web"].sources == ("203.0.113.1",)
    assert outcomes["web"].reason is Reason.SYNCED
    assert f"left out 1 private source(s) ({private})" in outcomes["web"].message


@pytest.mark.parametrize("public", ["172.15.255.255", "172.32.0.1", "100.63.255.255", "192.0.2.7"])
def test_addresses_next_to_private_space_are_kept(public: str) -> None:
    _, targets = outcome_of(ccnp(ingress=[{"fromCIDR": [f"{public}/32"]}]))
    assert targets["web"].sources == (public,)


# -- one unambiguous gateway ---------------------------------------------------------------


def test_two_loadbalancer_addresses_in_front_of_the_pods_are_a_discovery_failure() -> None:
    other = lb("dashboard", "198.51.100.20", {"app": "web"})
    outcomes, targets = outcome_of(ccnp(), services=(GATEWAY, other))
    failed = outcomes["web"]
    assert failed.reason is Reason.DISCOVERY_FAILED and not targets
    assert "apps/dashboard (198.51.100.20)" in failed.message
    assert "apps/web (198.51.100.10)" in failed.message
    assert GATEWAY_ANNOTATION in failed.message


def test_services_sharing_one_address_have_their_ports_merged() -> None:
    tcp = lb("web", "198.51.100.10", {"app": "web"}, [{"port": 443}])
    udp = lb("web-udp", "198.51.100.10", {"app": "web"}, [{"port": 443, "protocol": "UDP"}])
    outcomes, targets = outcome_of(ccnp(), services=(tcp, udp))
    assert outcomes["web"].reason is Reason.SYNCED
    assert targets["web"].gateway.ports == (ServicePort("tcp", 443), ServicePort("udp", 443))


def test_the_gateway_annotation_chooses_one_service() -> None:
    other = lb("dashboard", "198.51.100.20", {"app": "web"}, [{"port": 8443}])
    outcomes, targets = outcome_of(ccnp(gateway="apps/dashboard"), services=(GATEWAY, other))
    assert targets["web"].gateway.ip == "198.51.100.20"
    assert targets["web"].gateway.ports == (ServicePort("tcp", 8443),)
    assert outcomes["web"].gateway_service == "apps/dashboard"


def test_the_annotation_of_the_later_group_is_accepted_too() -> None:
    raw = ccnp()
    raw["metadata"]["annotations"]["router-policy-sync.homelab-images.benfiola.com/gateway"] = (
        "apps/dashboard"
    )
    other = lb("dashboard", "198.51.100.20", {"app": "web"})
    _, targets = outcome_of(raw, services=(GATEWAY, other))
    assert targets["web"].gateway.ip == "198.51.100.20"


def test_a_named_gateway_must_front_a_selected_pod() -> None:
    elsewhere = lb("dashboard", "198.51.100.20", {"app": "other"})
    outcomes, _ = outcome_of(ccnp(gateway="apps/dashboard"), services=(GATEWAY, elsewhere))
    assert outcomes["web"].reason is Reason.DISCOVERY_FAILED
    assert "apps/dashboard" in outcomes["web"].message


@pytest.mark.parametrize("value", ["dashboard", "apps/", "Apps/x", "a/b/c"])
def test_a_malformed_gateway_annotation_is_a_validation_failure(value: str) -> None:
    outcomes, _ = outcome_of(ccnp(gateway=value))
    assert outcomes["web"].reason is Reason.VALIDATION_FAILED
    assert f"metadata.annotations[{GATEWAY_ANNOTATION}]" in outcomes["web"].message


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed", "Unknown"])
def test_only_running_pods_select_a_gateway(phase: str) -> None:
    outcomes, _ = outcome_of(ccnp(), pods=(pod("web-0", {"app": "web"}, phase),))
    assert outcomes["web"].reason is Reason.DISCOVERY_FAILED
    assert "no running pod matches" in outcomes["web"].message


def test_a_selector_without_a_namespace_says_any_namespace_can_take_part() -> None:
    outcomes, _ = outcome_of(ccnp(selector={"app": "web"}))
    assert outcomes["web"].reason is Reason.SYNCED
    assert "any namespace can take part" in outcomes["web"].message
    named, _ = outcome_of(ccnp(selector={"app": "web"}, gateway="apps/web"))
    assert "any namespace" not in named["web"].message


def test_the_status_records_the_gateway_service() -> None:
    outcomes, _ = outcome_of(ccnp())
    assert (outcomes["web"].gateway_ip, outcomes["web"].gateway_service) == (
        "198.51.100.10",
        "apps/web",
    )


# -- gateway addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("127.0.0.1", "a loopback address"),
        ("0.0.0.0", "the unspecified address"),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.5", "a multicast address"),
        ("169.254.10.1", "a link-local address"),
    ],
)
def test_addresses_that_are_never_a_gateway_are_refused(address: str, what: str) -> None:
    outcomes, targets = outcome_of(ccnp(), services=(lb("web", address, {"app": "web"}),))
    assert outcomes["web"].reason is Reason.VALIDATION_FAILED and not targets
    assert f'"{address}" is {what}, never a gateway' in outcomes["web"].message


def test_gateway_ranges_limit_the_gateways() -> None:
    pool = (ipaddress.ip_network("198.51.100.0/28"),)
    ok, _ = outcome_of(ccnp(), gateway_ranges=pool)
    assert ok["web"].reason is Reason.SYNCED
    outside = (ipaddress.ip_network("198.51.100.16/28"),)
    refused, _ = outcome_of(ccnp(), gateway_ranges=outside)
    assert refused["web"].reason is Reason.VALIDATION_FAILED
    assert "--gateway-cidr 198.51.100.16/28" in refused["web"].message


# -- sources scoped as Cilium scopes them --------------------------------------------------


def test_a_node_selector_rule_never_brings_sources() -> None:
    policy = ccnp(
        specs=[
            {
                "endpointSelector": {"matchLabels": {"app": "web", NS_KEY: "apps"}},
                "ingress": [{"fromCIDR": ["203.0.113.1/32"]}],
            },
            {"nodeSelector": {}, "ingress": [{"fromCIDR": ["203.0.113.99/32"]}]},
        ]
    )
    _, targets = outcome_of(policy)
    assert targets["web"].sources == ("203.0.113.1",)


def test_a_rule_selecting_other_pods_brings_no_sources() -> None:
    policy = ccnp(
        specs=[
            {
                "endpointSelector": {"matchLabels": {"app": "web", NS_KEY: "apps"}},
                "ingress": [{"fromCIDR": ["203.0.113.1/32"]}],
            },
            {
                "endpointSelector": {"matchLabels": {"app": "db", NS_KEY: "apps"}},
                "ingress": [{"fromCIDR": ["203.0.113.50/32"]}],
            },
        ]
    )
    db = pod("db-0", {"app": "db"})
    _, targets = outcome_of(policy, pods=(WEB, db))
    assert targets["web"].sources == ("203.0.113.1",)


TWO_PORTS = lb("web", "198.51.100.10", {"app": "web"}, [{"port": 80}, {"port": 443}])


def test_to_ports_opens_only_the_allowed_service_ports() -> None:
    rule = {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "443"}]}]}
    _, targets = outcome_of(ccnp(ingress=[rule]), services=(TWO_PORTS,))
    assert targets["web"].gateway.ports == (ServicePort("tcp", 443),)
    assert targets["web"].sources == ("203.0.113.1",)


def test_a_rule_that_opens_no_service_port_brings_no_source_and_says_so() -> None:
    rule = {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "22"}]}]}
    outcomes, targets = outcome_of(ccnp(ingress=[rule]), services=(TWO_PORTS,))
    assert targets["web"].sources == ()
    assert "spec.ingress[0] opens no port of the gateway" in outcomes["web"].message


def test_to_ports_match_the_target_port_not_the_service_port() -> None:
    service = lb("web", "198.51.100.10", {"app": "web"}, [{"port": 443, "targetPort": 8443}])
    rule = {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "8443"}]}]}
    _, targets = outcome_of(ccnp(ingress=[rule]), services=(service,))
    assert targets["web"].gateway.ports == (ServicePort("tcp", 443),)


def test_a_named_target_port_is_resolved_through_the_pods_container_ports() -> None:
    service = lb("web", "198.51.100.10", {"app": "web"}, [{"port": 443, "targetPort": "https"}])
    web = pod(
        "web-0",
        {"app": "web"},
        containers=[{"name": "app", "ports": [{"name": "https", "containerPort": 8443}]}],
    )
    rule = {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "8443"}]}]}
    _, targets = outcome_of(ccnp(ingress=[rule]), services=(service,), pods=(web,))
    assert targets["web"].gateway.ports == (ServicePort("tcp", 443),)
    assert targets["web"].sources == ("203.0.113.1",)
    by_name = {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "https"}]}]}
    _, named = outcome_of(ccnp(ingress=[by_name]), services=(service,), pods=(web,))
    assert named["web"].gateway.ports == (ServicePort("tcp", 443),)


def test_rules_that_disagree_on_ports_are_refused_with_how_to_split() -> None:
    rules = [
        {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "443"}]}]},
        {"fromCIDR": ["203.0.113.2/32"]},
    ]
    outcomes, targets = outcome_of(ccnp(ingress=rules), services=(TWO_PORTS,))
    assert outcomes["web"].reason is Reason.VALIDATION_FAILED and not targets
    assert "spec.ingress[0] opens tcp 443" in outcomes["web"].message
    assert "spec.ingress[1] opens tcp 80, tcp 443" in outcomes["web"].message
    assert "split them into one policy per set of ports" in outcomes["web"].message


def test_rules_that_agree_on_ports_share_the_list() -> None:
    rules = [
        {"fromCIDR": ["203.0.113.1/32"], "toPorts": [{"ports": [{"port": "443"}]}]},
        {"fromCIDR": ["203.0.113.2/32"], "toPorts": [{"ports": [{"port": "443"}]}]},
    ]
    _, targets = outcome_of(ccnp(ingress=rules), services=(TWO_PORTS,))
    assert targets["web"].sources == ("203.0.113.1", "203.0.113.2")


# -- overlapping claims --------------------------------------------------------------------


def test_the_later_of_two_policies_claiming_a_source_and_port_is_refused() -> None:
    first = ccnp("first", created="2026-01-01T00:00:00Z")
    second = ccnp("second", created="2026-02-01T00:00:00Z", selector={"app": "api", NS_KEY: "apps"})
    api = pod("api-0", {"app": "api"})
    api_lb = lb("api", "198.51.100.30", {"app": "api"})
    outcomes, targets = outcome_of(second, first, pods=(WEB, api), services=(GATEWAY, api_lb))
    assert outcomes["first"].reason is Reason.SYNCED and "first" in targets
    refused = outcomes["second"]
    assert refused.reason is Reason.VALIDATION_FAILED and "second" not in targets
    assert "203.0.113.1 on tcp 443" in refused.message and "first" in refused.message


def test_two_policies_with_the_same_gateway_may_share_a_source() -> None:
    outcomes, _ = outcome_of(ccnp("a"), ccnp("b"))
    assert {o.reason for o in outcomes.values()} == {Reason.SYNCED}


# -- a failed policy's NAT to a recycled address -------------------------------------------

OWN = Ownership()


def nat(policy: str, address: str) -> dict[str, str]:
    return {
        ".id": f"*{abs(hash((policy, address))) % 999 + 1:X}",
        "chain": "dstnat",
        "action": "dst-nat",
        "protocol": "tcp",
        "dst-port": "443",
        "src-address-list": OWN.address_list(policy),
        "to-addresses": address,
        "to-ports": "443",
        "comment": OWN.nat_comment(policy, "tcp", 443),
    }


MARKER = {".id": "*1", "chain": "forward", "action": "passthrough", "comment": OWN.marker_comment}


def test_a_failed_policys_nat_to_an_address_now_owned_by_another_service_is_removed() -> None:
    """web failed (its pods are gone); its old address 198.51.100.10 now belongs to `other`."""
    other = lb("other", "198.51.100.10", {"app": "other"})
    router_policies = {"web": {"status": {"gatewayService": "apps/web", "gatewayIP": None}}}
    snapshot = ClusterSnapshot([ccnp()], [], [other], router_policies=router_policies)
    outcomes, targets = evaluate(snapshot)
    assert outcomes[0].reason is Reason.DISCOVERY_FAILED
    released = released_addresses(snapshot, outcomes)
    assert "198.51.100.10 now belongs to Service apps/other" in released["web"]["198.51.100.10"]
    entry = {".id": "*2", "list": OWN.address_list("web"), "address": "203.0.113.1"}
    tables = {Table.FILTER: [MARKER], Table.NAT: [nat("web", "198.51.100.10")],
              Table.ADDRESS_LIST: [entry]}  # fmt: skip
    plan = plan_router(targets, tables, OWN, {"web"}, released=released)
    assert [(c.action.value, c.table, c.policy) for c in plan.changes] == [
        ("delete", Table.NAT, "web")
    ]
    keep = plan_router(targets, tables, OWN, {"web"}, released={})
    assert not keep  # without the release, a failed policy keeps everything


def test_nothing_is_released_while_the_address_is_still_the_recorded_gateways() -> None:
    router_policies = {"web": {"status": {"gatewayService": "apps/web"}}}
    failed = [PolicyOutcome("web", Reason.DISCOVERY_FAILED, "pods gone")]
    snapshot = ClusterSnapshot([ccnp()], [], [GATEWAY], router_policies=router_policies)
    assert released_addresses(snapshot, failed) == {"web": {}}
    synced = [PolicyOutcome("web", Reason.SYNCED, "ok")]
    assert released_addresses(snapshot, synced) == {}
    unrecorded = ClusterSnapshot([ccnp()], [], [GATEWAY], router_policies={"web": {}})
    assert released_addresses(unrecorded, failed) == {}


def test_an_address_the_recorded_gateway_still_shares_is_not_released() -> None:
    """Another namespace's Service may share the address (LB IP sharing): the gateway still has
    it, so nothing is recycled."""
    shared = service_from_raw(
        {
            "metadata": {"name": "twin", "namespace": "other"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 1}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}},
        }
    )
    router_policies = {"web": {"status": {"gatewayService": "apps/web"}}}
    failed = [PolicyOutcome("web", Reason.DISCOVERY_FAILED, "pods gone")]
    snapshot = ClusterSnapshot([ccnp()], [], [GATEWAY, shared], router_policies=router_policies)
    assert released_addresses(snapshot, failed) == {"web": {}}


def test_a_policy_named_like_the_marker_is_refused_before_planning() -> None:
    """Its rules' comments would start `router-policy-sync::marker`, which reads back as foreign:
    every run would create them again."""
    from datetime import UTC, datetime

    from sync_job.router.client import RouterSettings, RouterWriter, make_http_client
    from sync_job.run import SyncSettings, run_once
    from sync_job.testing.emulator import RouterOSEmulator

    emulator = RouterOSEmulator("admin", "pw")
    emulator.seed("ip/firewall/filter", {"chain": "forward", "action": "passthrough",
                                          "comment": "router-policy-sync::marker"})  # fmt: skip
    settings = RouterSettings("https://router.test.invalid/rest", "admin", "pw")
    snapshot = ClusterSnapshot([ccnp("marker-web"), ccnp("web")], [WEB], [GATEWAY])
    with make_http_client(settings, transport=emulator.transport()) as http:
        report = run_once(
            read_cluster=lambda: snapshot, router=RouterWriter(http, settings), kube=None,
            settings=SyncSettings(), check=False, now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip
    outcomes = {o.name: o for o in report.outcomes}
    assert outcomes["marker-web"].reason is Reason.VALIDATION_FAILED
    assert "may not start with 'marker'" in outcomes["marker-web"].message
    assert outcomes["web"].reason is Reason.SYNCED
    assert {c.policy for c in report.plan.changes} == {"web"}


def test_released_addresses_look_at_every_failed_policy_after_a_synced_one() -> None:
    other = lb("other", "198.51.100.10", {"app": "other"})
    router_policies = {"b": {"status": {"gatewayService": "apps/web"}}}
    outcomes = [
        PolicyOutcome("a", Reason.SYNCED, "ok"),
        PolicyOutcome("b", Reason.DISCOVERY_FAILED, "pods gone"),
    ]
    snapshot = ClusterSnapshot([], [], [other], router_policies=router_policies)
    assert list(released_addresses(snapshot, outcomes)) == ["b"]


@pytest.mark.parametrize("target", [[443], 1.5, 0, 70000, "Not_A_Name", ""])
def test_a_malformed_target_port_is_a_validation_failure_naming_it(target: Any) -> None:
    service = lb("web", "198.51.100.10", {"app": "web"}, [{"port": 443, "targetPort": target}])
    outcomes, targets = outcome_of(ccnp(), services=(service,))
    assert outcomes["web"].reason is Reason.VALIDATION_FAILED and not targets
    assert "Service apps/web: spec.ports[0].targetPort" in outcomes["web"].message
