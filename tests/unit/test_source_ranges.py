"""`--allow-source-ranges`: IPv4 prefixes as address-list entries, `except` subtracted, deny still
winning, reserved and private space respected, and nothing wider than /8 (never 0.0.0.0/0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sync_job.model import PolicyError, Reason
from sync_job.router.desired import policy_objects
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table
from sync_job.source.cilium import parse_policy
from sync_job.source.evaluate import evaluate
from sync_job.source.snapshot import (
    ANNOTATION,
    ClusterSnapshot,
    cidr_group_from_raw,
    pod_from_raw,
    service_from_raw,
)
from tests.support.router import ADDRESS_LIST, Router, run_cli

POD = pod_from_raw(
    {
        "metadata": {"name": "web-0", "namespace": "apps", "labels": {"app": "web"}},
        "status": {"phase": "Running"},
    }
)
LB = service_from_raw(
    {
        "metadata": {"name": "web-lb", "namespace": "apps"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 443}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}},
    }
)
OWNER = "CiliumClusterwideNetworkPolicy web"


def ccnp(*peers: dict[str, Any], deny: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": list(peers),
    }
    if deny is not None:
        spec["ingressDeny"] = deny
    return {"metadata": {"name": "web", "annotations": {ANNOTATION: ""}}, "spec": spec}


def cidrs(*values: str) -> dict[str, Any]:
    return {"fromCIDR": list(values)}


def cidr_set(cidr: str, *excepts: str) -> dict[str, Any]:
    return {"fromCIDRSet": [{"cidr": cidr, "except": list(excepts)}]}


def sources(policy: dict[str, Any]) -> tuple[str, ...]:
    return parse_policy(policy, allow_ranges=True).sources


def failure(policy: dict[str, Any], *, allow: bool = True) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(policy, allow_ranges=allow)
    assert caught.value.reason is Reason.VALIDATION_FAILED
    return caught.value.message


def evaluated(policy: dict[str, Any], **kw: Any) -> tuple[Reason, str, tuple[str, ...]]:
    outcomes, targets = evaluate(ClusterSnapshot([policy], [POD], [LB]), **kw)
    (outcome,) = outcomes
    return outcome.reason, outcome.message, targets[0].sources if targets else ()


def test_a_range_is_kept_as_its_network_address_and_prefix() -> None:
    assert sources(ccnp(cidrs("203.0.113.77/24", "198.51.100.5/32"))) == (
        "198.51.100.5",
        "203.0.113.0/24",
    )


def test_without_the_flag_a_range_fails_naming_the_flag() -> None:
    message = failure(ccnp(cidrs("203.0.113.0/24")), allow=False)
    assert message == (
        f'{OWNER}: spec.ingress[0].fromCIDR[0] "203.0.113.0/24" is not a single IPv4 address '
        "(/32): pass --allow-source-ranges to sync ranges"
    )


def test_a_group_holding_a_range_needs_the_flag() -> None:
    group = cidr_group_from_raw(
        {"metadata": {"name": "cdn"}, "spec": {"externalCIDRs": ["203.0.113.0/24"]}}
    )
    policy = ccnp({"fromCIDRSet": [{"cidrGroupRef": "cdn"}]})
    snapshot = ClusterSnapshot([policy], [POD], [LB], cidr_groups={"cdn": group})
    (refused,), _ = evaluate(snapshot)
    assert refused.reason is Reason.VALIDATION_FAILED
    assert "(CiliumCIDRGroup cdn) spec.externalCIDRs[0]" in refused.message
    assert "pass --allow-source-ranges" in refused.message
    (synced,), (target,) = evaluate(snapshot, allow_source_ranges=True)
    assert synced.reason is Reason.SYNCED
    assert target.sources == ("203.0.113.0/24",)
    assert "sources from CiliumCIDRGroup cdn" in synced.message


def test_except_is_subtracted_into_the_fewest_prefixes() -> None:
    assert sources(ccnp(cidr_set("203.0.113.0/24", "203.0.113.0/26"))) == (
        "203.0.113.64/26",
        "203.0.113.128/25",
    )


def test_except_of_the_whole_range_leaves_nothing() -> None:
    assert sources(ccnp(cidr_set("203.0.113.0/24", "203.0.113.0/24"))) == ()


def test_adjacent_ranges_merge_into_one_prefix() -> None:
    assert sources(ccnp(cidrs("203.0.113.0/25", "203.0.113.128/25"))) == ("203.0.113.0/24",)


def test_ingress_deny_still_wins_over_a_range() -> None:
    policy = ccnp(cidrs("203.0.113.0/24"), deny=[cidrs("203.0.113.128/25")])
    assert sources(policy) == ("203.0.113.0/25",)


def test_a_deny_except_gives_back_its_part() -> None:
    policy = ccnp(cidrs("203.0.113.0/24"), deny=[cidr_set("203.0.113.0/24", "203.0.113.0/25")])
    assert sources(policy) == ("203.0.113.0/25",)


@pytest.mark.parametrize(
    ("cidr", "problem"),
    [
        ("127.0.0.0/16", "is in the reserved range 127.0.0.0/8"),
        ("224.0.0.0/8", "is in the reserved range 224.0.0.0/4"),
        ("169.254.0.0/15", "overlaps the reserved range 169.254.0.0/16"),
    ],
)
def test_a_range_overlapping_a_reserved_range_fails(cidr: str, problem: str) -> None:
    assert failure(ccnp(cidrs(cidr))) == (
        f'{OWNER}: spec.ingress[0].fromCIDR[0] "{cidr}" {problem}'
    )


@pytest.mark.parametrize("allow", [True, False])
def test_the_world_prefix_is_always_refused(allow: bool) -> None:
    message = failure(ccnp(cidrs("0.0.0.0/0")), allow=allow)
    assert '"0.0.0.0/0" is every IPv4 address, which is never synced' in message


def test_the_world_prefix_is_refused_even_without_reserved_ranges() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(ccnp(cidrs("0.0.0.0/0")), (), allow_ranges=True)
    assert "is every IPv4 address" in caught.value.message


def test_nothing_wider_than_a_slash_8_is_synced() -> None:
    assert sources(ccnp(cidrs("44.0.0.0/8"))) == ("44.0.0.0/8",)
    message = failure(ccnp(cidrs("44.0.0.0/7")))
    assert message.endswith('"44.0.0.0/7" is wider than /8, the widest IPv4 range synced')


def test_a_range_inside_private_space_is_left_out_like_a_private_host() -> None:
    reason, message, found = evaluated(
        ccnp(cidrs("10.20.0.0/16", "203.0.113.0/24")), allow_source_ranges=True
    )
    assert reason is Reason.SYNCED
    assert found == ("203.0.113.0/24",)
    assert "left out 1 private source(s) (10.20.0.0/16)" in message


def test_a_range_straddling_private_space_fails() -> None:
    reason, message, found = evaluated(ccnp(cidrs("100.0.0.0/9")), allow_source_ranges=True)
    assert (reason, found) == (Reason.VALIDATION_FAILED, ())
    assert "source 100.0.0.0/9 straddles the private range 100.64.0.0/10" in message


def test_a_host_inside_a_range_of_another_rule_is_one_entry() -> None:
    policy = ccnp(cidrs("203.0.113.0/24"), cidrs("203.0.113.9/32"))
    reason, _, found = evaluated(policy, allow_source_ranges=True)
    assert (reason, found) == (Reason.SYNCED, ("203.0.113.0/24",))


def test_without_the_flag_hosts_are_never_merged() -> None:
    policy = ccnp(cidrs("203.0.113.0/32", "203.0.113.1/32"))
    assert parse_policy(policy).sources == ("203.0.113.0", "203.0.113.1")


def test_a_range_becomes_one_address_list_entry_as_routeros_stores_it() -> None:
    snapshot = ClusterSnapshot([ccnp(cidrs("203.0.113.5/24"))], [POD], [LB])
    _, (target,) = evaluate(snapshot, allow_source_ranges=True)
    rows = policy_objects(target, Ownership(), "forward")
    entries = [r.fields["address"] for r in rows if r.table is Table.ADDRESS_LIST]
    assert entries == ["203.0.113.0/24"]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_command_passes_the_flag_through_to_the_address_list(
    how: str, tmp_path: Path, router: Router
) -> None:
    path = tmp_path / "cluster.yaml"
    documents = [
        {"kind": "CiliumClusterwideNetworkPolicy", **ccnp(cidrs("203.0.113.0/24"))},
        {
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "apps", "labels": {"app": "web"}},
            "status": {"phase": "Running"},
        },
        {
            "kind": "Service",
            "metadata": {"name": "web-lb", "namespace": "apps"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}},
        },
    ]
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    base = ("sync", "--from-file", str(path), "--mikrotik-base-url", router.url)
    refused = run_cli(*base)
    assert refused.code == 1
    assert "pass --allow-source-ranges" in refused.stdout + refused.stderr
    if how == "flag":
        done = run_cli(*base, "--allow-source-ranges")
    else:
        done = run_cli(*base, env={"ALLOW_SOURCE_RANGES": "true"})
    assert done.code == 0, done.stdout + done.stderr
    assert [r["address"] for r in router.owned(ADDRESS_LIST)] == ["203.0.113.0/24"]
    # What the router stored reads back as what is wanted: a second run has nothing to do.
    again = run_cli(*base, "--check", "--allow-source-ranges")
    assert again.code == 0, again.stdout + again.stderr


def _second_gateway() -> tuple[Any, Any]:
    pod = pod_from_raw(
        {
            "metadata": {"name": "api-0", "namespace": "apps", "labels": {"app": "api"}},
            "status": {"phase": "Running"},
        }
    )
    lb = service_from_raw(
        {
            "metadata": {"name": "api-lb", "namespace": "apps"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "api"}, "ports": [{"port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.20"}]}},
        }
    )
    return pod, lb


@pytest.mark.parametrize(
    ("first", "later"), [("203.0.113.0/24", "203.0.113.9/32"), ("203.0.113.9/32", "203.0.113.0/24")]
)
def test_a_range_overlapping_another_gateways_source_refuses_the_later_policy(
    first: str, later: str
) -> None:
    early = ccnp(cidrs(first))
    early["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    late = ccnp(cidrs(later))
    late["metadata"] |= {"name": "api", "creationTimestamp": "2026-02-01T00:00:00Z"}
    late["spec"]["endpointSelector"] = {"matchLabels": {"app": "api"}}
    pod, lb = _second_gateway()
    snapshot = ClusterSnapshot([early, late], [POD, pod], [LB, lb])
    outcomes, targets = evaluate(snapshot, allow_source_ranges=True)
    by_name = {o.name: o for o in outcomes}
    assert by_name["web"].reason is Reason.SYNCED
    assert by_name["api"].reason is Reason.VALIDATION_FAILED
    assert "by CiliumClusterwideNetworkPolicy web" in by_name["api"].message
    assert "overlaps" in by_name["api"].message
    assert [t.name for t in targets] == ["web"]
