"""CiliumCIDRGroups as policy sources, both annotation keys, and how groups are read.

A `fromCIDRSet[].cidrGroupRef` takes its group's `spec.externalCIDRs`, a `cidrGroupSelector`
every matching group's (Kubernetes label-selector semantics); the groups are listed from
`cilium.io/v2`, else `v2alpha1`, and a cluster without the CRD fails only the policies that
reference groups.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sync_job.kubeapi import (
    CIDR_GROUPS,
    CIDR_GROUPS_V2ALPHA1,
    CILIUM_POLICIES,
    NAMESPACES,
    PODS,
    ROUTER_POLICIES,
    SERVICES,
    KubeClient,
)
from sync_job.model import Reason
from sync_job.source.cluster import read_snapshot
from sync_job.source.evaluate import evaluate
from sync_job.source.file import load_snapshot
from sync_job.source.snapshot import (
    ANNOTATION,
    CidrGroup,
    ClusterSnapshot,
    cidr_group_from_raw,
    is_annotated,
    pod_from_raw,
    service_from_raw,
)
from tests.unit.fake_kube_api import FakeApi, ListServer, no_sleep

LATER_KEY = "router-policy-sync.homelab-images.benfiola.com/sync-with-router"


def group_raw(name: str, *cidrs: str, version: str = "v2", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": f"cilium.io/{version}",
        "kind": "CiliumCIDRGroup",
        "metadata": {"name": name, "labels": labels},
        "spec": {"externalCIDRs": list(cidrs)},
    }


def groups(*raws: dict[str, Any]) -> dict[str, CidrGroup]:
    return {g.name: g for g in map(cidr_group_from_raw, raws)}


def ccnp(*peers: dict[str, Any], name: str = "web", key: str = ANNOTATION) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name, "annotations": {key: "true"}},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": list(peers),
        },
    }


def ref(name: str) -> dict[str, Any]:
    return {"fromCIDRSet": [{"cidrGroupRef": name}]}


def selector(**kw: Any) -> dict[str, Any]:
    return {"fromCIDRSet": [{"cidrGroupSelector": kw}]}


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


def outcome(
    policy: dict[str, Any], cidr_groups: dict[str, CidrGroup] | None, **kw: Any
) -> tuple[Reason, str, tuple[str, ...]]:
    snapshot = ClusterSnapshot([policy], [POD], [LB], cidr_groups=cidr_groups)
    outcomes, targets = evaluate(snapshot, **kw)
    (result,) = outcomes
    sources = targets[0].sources if targets else ()
    return result.reason, result.message, sources


OFFICE = group_raw("office", "203.0.113.7/32", "203.0.113.8/32", site="hq")
CDN = group_raw("cdn", "198.51.100.77/32", site="edge", tier="public")


# --- annotation keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ANNOTATION, LATER_KEY])
def test_either_annotation_key_selects_and_the_debug_log_names_it(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sync_job.source.snapshot"):
        assert is_annotated(ccnp(key=key))
    assert f"selected by the annotation {key}" in caplog.text


@pytest.mark.parametrize("key", [ANNOTATION, LATER_KEY])
@pytest.mark.parametrize("value", ["false", "No", "0"])
def test_either_key_saying_no_does_not_select(key: str, value: str) -> None:
    policy = ccnp(key=key)
    policy["metadata"]["annotations"][key] = value
    assert not is_annotated(policy)


def test_an_unrelated_annotation_does_not_select() -> None:
    assert not is_annotated(ccnp(key="example.com/sync-with-router"))


# --- groups as sources -------------------------------------------------------------------------


def test_a_group_by_name_gives_its_cidrs_and_the_synced_message_names_it() -> None:
    reason, message, sources = outcome(
        ccnp(ref("office"), {"fromCIDR": ["203.0.113.1/32"]}), groups(OFFICE, CDN)
    )
    assert reason is Reason.SYNCED
    assert sources == ("203.0.113.1", "203.0.113.7", "203.0.113.8")
    assert "sources from CiliumCIDRGroup office" in message
    assert "cdn" not in message


@pytest.mark.parametrize("version", ["v2", "v2alpha1"])
def test_a_group_selector_takes_every_matching_group(version: str) -> None:
    found = groups(
        group_raw("office", "203.0.113.7/32", version=version, site="hq", tier="public"),
        group_raw("cdn", "198.51.100.77/32", version=version, site="edge", tier="public"),
        group_raw("lab", "192.0.2.50/32", version=version, site="lab"),
    )
    reason, message, sources = outcome(ccnp(selector(matchLabels={"tier": "public"})), found)
    assert reason is Reason.SYNCED, message
    assert sources == ("198.51.100.77", "203.0.113.7")
    assert "sources from CiliumCIDRGroup cdn, office" in message


@pytest.mark.parametrize(
    ("expression", "chosen"),
    [
        ({"key": "site", "operator": "In", "values": ["hq", "lab"]}, ("192.0.2.50", "203.0.113.7")),
        ({"key": "site", "operator": "NotIn", "values": ["hq"]}, ("192.0.2.50", "198.51.100.77")),
        ({"key": "tier", "operator": "Exists"}, ("198.51.100.77", "203.0.113.7")),
        ({"key": "tier", "operator": "DoesNotExist"}, ("192.0.2.50",)),
    ],
)
def test_match_expressions_have_kubernetes_semantics(
    expression: dict[str, Any], chosen: tuple[str, ...]
) -> None:
    found = groups(
        group_raw("office", "203.0.113.7/32", site="hq", tier="public"),
        group_raw("cdn", "198.51.100.77/32", site="edge", tier="public"),
        group_raw("lab", "192.0.2.50/32", site="lab"),
    )
    _, message, sources = outcome(ccnp(selector(matchExpressions=[expression])), found)
    assert sources == chosen, message


def test_a_selector_key_with_a_colon_is_taken_literally() -> None:
    # Cilium's `k8s:` source prefix is an endpoint-selector notion; group labels are plain.
    found = groups(group_raw("office", "203.0.113.7/32", site="hq"))
    reason, message, _ = outcome(ccnp(selector(matchLabels={"k8s:site": "hq"})), found)
    assert reason is Reason.SYNCED
    assert "CiliumCIDRGroup" not in message  # nothing matched


def test_a_selector_matching_no_group_contributes_nothing() -> None:
    reason, _, sources = outcome(
        ccnp(selector(matchLabels={"site": "mars"}), {"fromCIDR": ["203.0.113.1/32"]}),
        groups(OFFICE),
    )
    assert reason is Reason.SYNCED
    assert sources == ("203.0.113.1",)


def test_a_missing_group_by_name_fails_the_policy_naming_it() -> None:
    reason, message, sources = outcome(ccnp(ref("gone")), groups(OFFICE))
    assert reason is Reason.VALIDATION_FAILED
    assert 'cidrGroupRef "gone" names no CiliumCIDRGroup: there is no group gone' in message
    assert sources == ()


def test_without_the_crd_only_policies_that_reference_groups_fail() -> None:
    snapshot = ClusterSnapshot(
        [ccnp(ref("office"), name="grouped"), ccnp({"fromCIDR": ["203.0.113.1/32"]})],
        [POD],
        [LB],
        cidr_groups=None,
    )
    outcomes, targets = evaluate(snapshot)
    by_name = {o.name: o for o in outcomes}
    assert by_name["web"].reason is Reason.SYNCED
    assert by_name["grouped"].reason is Reason.VALIDATION_FAILED
    assert "the CiliumCIDRGroup CRD (ciliumcidrgroups.cilium.io) is not installed" in (
        by_name["grouped"].message
    )
    assert [t.name for t in targets] == ["web"]


def test_a_group_cidr_follows_the_literal_rules_and_the_message_names_the_group() -> None:
    reason, message, _ = outcome(ccnp(ref("bad")), groups(group_raw("bad", "127.0.0.1/32")))
    assert reason is Reason.VALIDATION_FAILED
    assert (
        "cidrGroupRef (CiliumCIDRGroup bad) spec.externalCIDRs[0] "
        '"127.0.0.1/32" is in the reserved range 127.0.0.0/8'
    ) in message


def test_a_group_in_a_deny_rule_removes_its_cidrs() -> None:
    policy = ccnp({"fromCIDR": ["203.0.113.1/32", "203.0.113.7/32"]})
    policy["spec"]["ingressDeny"] = [ref("office")]
    reason, message, sources = outcome(policy, groups(OFFICE))
    assert reason is Reason.SYNCED, message
    assert sources == ("203.0.113.1",)


def test_a_group_whose_external_cidrs_is_not_a_list_is_named() -> None:
    bad = group_raw("bad")
    bad["spec"]["externalCIDRs"] = "203.0.113.7/32"
    reason, message, _ = outcome(ccnp(ref("bad")), groups(bad))
    assert reason is Reason.VALIDATION_FAILED
    assert "(CiliumCIDRGroup bad) spec.externalCIDRs" in message


# --- reading the groups ------------------------------------------------------------------------


def cluster(policies: list[dict[str, Any]], served: dict[str, list[Any]]) -> FakeApi:
    lists: dict[str, list[Any]] = {
        CILIUM_POLICIES: policies,
        ROUTER_POLICIES: [],
        PODS: [],
        SERVICES: [],
        NAMESPACES: [],
        **served,
    }
    return FakeApi(ListServer(lists).handle)


@pytest.mark.parametrize(
    ("served", "read"),
    [
        ({CIDR_GROUPS: [OFFICE]}, [CIDR_GROUPS]),
        (
            {CIDR_GROUPS_V2ALPHA1: [group_raw("office", version="v2alpha1")]},
            [CIDR_GROUPS, CIDR_GROUPS_V2ALPHA1],
        ),
    ],
    ids=["v2", "v2alpha1-only"],
)
def test_groups_are_read_from_v2_else_v2alpha1(served: dict[str, Any], read: list[str]) -> None:
    api = cluster([ccnp(ref("office"))], served)
    snapshot = read_snapshot(KubeClient(api, sleep=no_sleep))
    assert snapshot.cidr_groups is not None
    assert list(snapshot.cidr_groups) == ["office"]
    assert [s.path for s in api.sent if "ciliumcidrgroups" in s.path] == read


def test_groups_read_as_none_when_no_version_is_served() -> None:
    api = cluster([ccnp(selector(matchLabels={"a": "b"}))], {})
    snapshot = read_snapshot(KubeClient(api, sleep=no_sleep))
    assert snapshot.cidr_groups is None


def test_groups_are_not_read_when_no_policy_references_one() -> None:
    api = cluster([ccnp({"fromCIDR": ["203.0.113.1/32"]})], {CIDR_GROUPS: [OFFICE]})
    snapshot = read_snapshot(KubeClient(api, sleep=no_sleep))
    assert snapshot.cidr_groups == {}
    assert not [s for s in api.sent if "ciliumcidrgroups" in s.path]


def test_from_file_reads_cidr_groups(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all([ccnp(ref("office")), OFFICE]), encoding="utf-8")
    snapshot = load_snapshot(path)
    assert snapshot.cidr_groups is not None
    assert snapshot.cidr_groups["office"].cidrs == ["203.0.113.7/32", "203.0.113.8/32"]
    assert snapshot.cidr_groups["office"].labels == {"site": "hq"}


def test_every_requirement_of_a_group_selector_must_hold() -> None:
    found = groups(OFFICE, CDN, group_raw("edge-lab", "192.0.2.50/32", site="edge"))
    chosen = selector(
        matchLabels={"site": "edge"},
        matchExpressions=[{"key": "tier", "operator": "In", "values": ["public"]}],
    )
    _, message, sources = outcome(ccnp(chosen), found)
    assert sources == ("198.51.100.77",), message
