"""IPv6 in policies and Services (README "IPv6 and dual-stack"): which IPv6 sources are synced,
which are refused and why, and the per-family gateway, through `parse_policy` and `evaluate`."""

from __future__ import annotations

from typing import Any

import pytest

from sync_job.model import Family, PolicyError, Reason
from sync_job.source.cilium import CidrGroup, parse_policy
from sync_job.source.evaluate import evaluate
from sync_job.source.snapshot import ANNOTATION, ClusterSnapshot, pod_from_raw, service_from_raw

BOTH = frozenset(Family)
ONLY6 = frozenset({Family.IPV6})
OWNER = "CiliumClusterwideNetworkPolicy web"
NS_KEY = "k8s:io.kubernetes.pod.namespace"


def ccnp(*ingress: dict[str, Any], deny: list[Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "endpointSelector": {"matchLabels": {"app": "web", NS_KEY: "apps"}},
        "ingress": list(ingress),
    }
    if deny is not None:
        spec["ingressDeny"] = deny
    return {
        "metadata": {"name": "web", "annotations": {ANNOTATION: "true"},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    }  # fmt: skip


def sources(raw: dict[str, Any], **kw: Any) -> tuple[str, ...]:
    return parse_policy(raw, families=kw.pop("families", BOTH), **kw).sources


def error(raw: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw, families=kw.pop("families", BOTH), **kw)
    assert caught.value.reason is Reason.VALIDATION_FAILED
    return caught.value.message


def test_ipv6_hosts_are_sources_in_the_form_routeros_stores() -> None:
    raw = ccnp({"fromCIDR": ["2001:DB8:0:0::1/128", "198.51.100.7/32", "2001:db8::1/128"]})
    # RFC 5952 text with /128, after the IPv4 ones (docs/routeros-lab-cases.md cases 1, 2)
    assert sources(raw) == ("198.51.100.7", "2001:db8::1/128")


def test_documentation_space_stays_valid() -> None:
    assert sources(ccnp({"fromCIDR": ["2001:db8:ffff::7/128"]})) == ("2001:db8:ffff::7/128",)


@pytest.mark.parametrize(
    ("cidr", "block"),
    [("::/128", "::/128"), ("::1/128", "::1/128"), ("fe80::1/128", "fe80::/10"),
     ("ff02::1/128", "ff00::/8"), ("::ffff:198.51.100.1/128", "::ffff:0:0/96")],
)  # fmt: skip
def test_reserved_ipv6_sources_are_refused_naming_the_range(cidr: str, block: str) -> None:
    message = error(ccnp({"fromCIDR": [cidr]}))
    assert message == (
        f'{OWNER}: spec.ingress[0].fromCIDR[0] "{cidr}" is in the reserved range {block}'
    )


def test_an_ipv6_source_without_ipv6_enabled_names_the_flag() -> None:
    message = error(ccnp({"fromCIDR": ["2001:db8::1/128"]}), families=frozenset({Family.IPV4}))
    assert "is IPv6, a family this job does not sync (--ip-families ipv4)" in message
    assert "add ipv6 to --ip-families" in message


def test_an_ipv4_source_with_only_ipv6_enabled_names_the_flag() -> None:
    message = error(ccnp({"fromCIDR": ["198.51.100.7/32"]}), families=ONLY6)
    assert "is IPv4, a family this job does not sync (--ip-families ipv6)" in message


def test_an_ipv6_prefix_needs_the_ranges_flag_and_at_most_a_slash_12() -> None:
    raw = ccnp({"fromCIDR": ["2001:db8:5::/48"]})
    assert "is not a single IPv6 address (/128): pass --allow-source-ranges" in error(raw)
    assert sources(raw, allow_ranges=True) == ("2001:db8:5::/48",)
    assert sources(ccnp({"fromCIDR": ["2000::/12"]}), allow_ranges=True) == ("2000::/12",)
    wide = error(ccnp({"fromCIDR": ["2000::/11"]}), allow_ranges=True)
    assert wide.endswith('"2000::/11" is wider than /12, the widest IPv6 range synced')
    every = error(ccnp({"fromCIDR": ["::/0"]}), allow_ranges=True)
    assert "is every IPv6 address, which is never synced" in every


def test_a_bare_ipv6_address_says_to_add_the_prefix_length() -> None:
    assert error(ccnp({"fromCIDR": ["2001:db8::1"]})).endswith(
        '"2001:db8::1" has no prefix length (write "2001:db8::1/128")'
    )


def test_ipv6_host_bits_of_a_prefix_are_cleared_and_adjacent_prefixes_merge() -> None:
    raw = ccnp({"fromCIDR": ["2001:db8:5::1/64", "2001:db8:5:1::/64"]})
    assert sources(raw, allow_ranges=True) == ("2001:db8:5::/63",)


def test_cidr_groups_and_except_work_for_ipv6() -> None:
    group = CidrGroup("office", {}, ["2001:db8:10::/48", "203.0.113.0/30"])
    raw = ccnp({"fromCIDRSet": [{"cidrGroupRef": "office", "except": ["2001:db8:10::/49"]}]})
    found = sources(raw, groups={"office": group}, allow_ranges=True)
    assert found == ("203.0.113.0/30", "2001:db8:10:8000::/49")


@pytest.mark.parametrize(
    ("entity", "left"),
    [("world-ipv6", ("198.51.100.7",)), ("world-ipv4", ("2001:db8::1/128",)), ("world", ()),
     ("all", ())],
)  # fmt: skip
def test_deny_entities_cover_their_family_only(entity: str, left: tuple[str, ...]) -> None:
    raw = ccnp(
        {"fromCIDR": ["198.51.100.7/32", "2001:db8::1/128"]}, deny=[{"fromEntities": [entity]}]
    )
    assert sources(raw) == left


def test_an_ipv6_deny_removes_only_ipv6_sources() -> None:
    raw = ccnp(
        {"fromCIDR": ["198.51.100.7/32", "2001:db8::1/128", "2001:db8::2/128"]},
        deny=[{"fromCIDR": ["2001:db8::1/128"]}],
    )
    assert sources(raw) == ("198.51.100.7", "2001:db8::2/128")


# -- evaluate: per-family gateway --------------------------------------------------------------

WEB_POD = pod_from_raw(
    {"metadata": {"name": "web-0", "namespace": "apps", "labels": {"app": "web"}},
     "status": {"phase": "Running"}}
)  # fmt: skip


def lb(*ips: str, name: str = "web") -> Any:
    return service_from_raw(
        {
            "metadata": {"name": name, "namespace": "apps"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                     "ports": [{"port": 443, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
        }
    )  # fmt: skip


def evaluated(raw: dict[str, Any], *services: Any, families: frozenset[Family] = BOTH) -> Any:
    outcomes, targets = evaluate(
        ClusterSnapshot([raw], [WEB_POD], list(services)), families=families
    )
    return outcomes[0], (targets[0] if targets else None)


DUAL = ccnp({"fromCIDR": ["198.51.100.7/32", "2001:db8:5::10/128"]})


def test_a_dual_stack_policy_gets_both_gateway_addresses() -> None:
    outcome, target = evaluated(DUAL, lb("203.0.113.50", "2001:DB8:100::50"))
    assert outcome.reason is Reason.SYNCED, outcome.message
    assert target.families == BOTH
    assert (target.gateway.ip, target.gateway.ip6) == ("203.0.113.50", "2001:db8:100::50")
    assert (outcome.gateway_ip, outcome.gateway_ip6) == ("203.0.113.50", "2001:db8:100::50")
    assert outcome.message.startswith(
        "router in sync: 1 source(s) -> 203.0.113.50, 1 IPv6 source(s) -> 2001:db8:100::50"
    )


def test_ipv6_sources_without_an_ipv6_gateway_address_are_a_discovery_failure() -> None:
    outcome, target = evaluated(DUAL, lb("203.0.113.50"))
    assert target is None and outcome.reason is Reason.DISCOVERY_FAILED
    assert outcome.message == (
        "CiliumClusterwideNetworkPolicy web has IPv6 sources, but its LoadBalancer Service "
        "apps/web has no IPv6 ingress IP (status.loadBalancer.ingress has none): give the "
        "Service an IPv6 address (spec.ipFamilies), or remove the IPv6 sources"
    )


def test_an_ipv4_only_policy_does_not_need_an_ipv6_gateway_address() -> None:
    outcome, target = evaluated(ccnp({"fromCIDR": ["198.51.100.7/32"]}), lb("203.0.113.50"))
    assert outcome.reason is Reason.SYNCED
    assert target.families == {Family.IPV4} and target.gateway.ip6 is None
    assert outcome.gateway_ip6 is None


def test_an_ipv6_only_policy_needs_no_ipv4_address() -> None:
    raw = ccnp({"fromCIDR": ["2001:db8:5::10/128"]})
    outcome, target = evaluated(raw, lb("2001:db8:100::50"))
    assert outcome.reason is Reason.SYNCED, outcome.message
    assert target.families == ONLY6 and target.gateway.ip is None
    # the same policy with the IPv6 ingress missing names what is missing
    outcome, _ = evaluated(raw, lb("203.0.113.50"))
    assert outcome.reason is Reason.DISCOVERY_FAILED and "no IPv6 ingress IP" in outcome.message


def test_with_ipv4_only_an_ipv6_ingress_address_is_never_a_gateway() -> None:
    raw = ccnp({"fromCIDR": ["198.51.100.7/32"]})
    outcome, _ = evaluated(raw, lb("2001:db8:100::50"), families=frozenset({Family.IPV4}))
    assert outcome.reason is Reason.DISCOVERY_FAILED
    assert "no IPv4 ingress IP yet" in outcome.message


def test_an_unusable_ipv6_gateway_fails_only_a_policy_that_needs_ipv6() -> None:
    service = lb("203.0.113.50", "fe80::1")
    outcome, _ = evaluated(ccnp({"fromCIDR": ["198.51.100.7/32"]}), service)
    assert outcome.reason is Reason.SYNCED
    outcome, _ = evaluated(DUAL, service)
    assert outcome.reason is Reason.VALIDATION_FAILED
    assert '"fe80::1" is a link-local address, never a gateway' in outcome.message


def test_services_that_disagree_on_the_ipv6_address_are_a_discovery_failure() -> None:
    outcome, _ = evaluated(
        DUAL,
        lb("203.0.113.50", "2001:db8:100::50"),
        lb("203.0.113.50", "2001:db8:100::51", name="b"),
    )
    assert outcome.reason is Reason.DISCOVERY_FAILED
    assert "disagree on the IPv6 gateway address" in outcome.message


def test_unique_local_ipv6_sources_are_left_out_like_private_ipv4() -> None:
    raw = ccnp({"fromCIDR": ["2001:db8:5::10/128", "fd00:1::5/128"]})
    outcome, target = evaluated(raw, lb("203.0.113.50", "2001:db8:100::50"))
    assert target.sources == ("2001:db8:5::10/128",)
    assert "left out 1 private source(s) (fd00:1::5/128)" in outcome.message


B6 = "2001:db8::60"


def test_ipv6_sources_of_two_policies_never_clash() -> None:
    """No NAT in front of IPv6: each accept rule names its own destination, so one source may
    reach two gateways (unlike IPv4, where one NAT rule decides)."""
    other = {**ccnp({"fromCIDR": ["2001:db8:5::10/128"]}), "metadata": {
        "name": "other", "annotations": {ANNOTATION: "true"},
        "creationTimestamp": "2026-02-01T00:00:00Z"}}  # fmt: skip
    other["spec"] = {**other["spec"], "endpointSelector": {"matchLabels": {"app": "b"}}}
    b_pod = pod_from_raw({"metadata": {"name": "b-0", "namespace": "apps", "labels": {"app": "b"}},
                          "status": {"phase": "Running"}})  # fmt: skip
    b_lb = service_from_raw({"metadata": {"name": "b", "namespace": "apps"},
                             "spec": {"type": "LoadBalancer", "selector": {"app": "b"},
                                      "ports": [{"port": 443}]},
                             "status": {"loadBalancer": {"ingress": [{"ip": B6}]}}})  # fmt: skip
    raw = ccnp({"fromCIDR": ["2001:db8:5::10/128"]})
    outcomes, targets = evaluate(
        ClusterSnapshot([raw, other], [WEB_POD, b_pod], [lb("2001:db8:100::50"), b_lb]),
        families=BOTH,
    )
    assert [o.reason for o in outcomes] == [Reason.SYNCED, Reason.SYNCED]
    assert len(targets) == 2
