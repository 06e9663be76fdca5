"""`read_snapshot` against a fake ApiClient: the five lists, paged, and how pods are read.

Pods are read as metadata only unless an annotated policy mentions the service-account label
(`io.cilium.k8s.policy.serviceaccount`), the one selector key that needs pod specs.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync_job.errors import SourceError
from sync_job.kubeapi import (
    CILIUM_POLICIES,
    JSON,
    LIVE_PODS,
    METADATA_ONLY,
    NAMESPACES,
    PODS,
    ROUTER_POLICIES,
    SERVICES,
    KubeClient,
)
from sync_job.source.cluster import _mentions_service_account, read_snapshot
from sync_job.source.snapshot import ANNOTATION, Pod
from tests.unit.fake_kube_api import FakeApi, ListServer, Sent, no_sleep, status

SA = "io.cilium.k8s.policy.serviceaccount"


def policy(name: str, selector: dict[str, Any], *, annotated: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotated:
        meta["annotations"] = {ANNOTATION: "true"}
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": meta,
        "spec": {"endpointSelector": selector, "ingress": [{"fromCIDR": ["0.0.0.0/0"]}]},
    }


BY_APP = policy("web", {"matchLabels": {"app": "web"}})
BY_SA = policy("gw", {"matchLabels": {f"k8s:{SA}": "gateway"}})
BY_SA_UNANNOTATED = policy("gw-off", {"matchLabels": {SA: "gateway"}}, annotated=False)

FULL_PODS = [
    {
        "metadata": {"name": f"web-{n}", "namespace": "apps", "labels": {"app": "web"}},
        "spec": {"serviceAccountName": "gateway", "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }
    for n in range(5)
]
# What a PartialObjectMetadataList carries: metadata only.
META_PODS = [{"kind": "PartialObjectMetadata", "metadata": pod["metadata"]} for pod in FULL_PODS]


def cluster(policies: list[dict[str, Any]]) -> tuple[FakeApi, ListServer]:
    lists: dict[str, list[Any]] = {
        CILIUM_POLICIES: policies,
        ROUTER_POLICIES: [{"metadata": {"name": "web"}, "status": {"ok": True}}],
        PODS: FULL_PODS,
        SERVICES: [
            {
                "metadata": {"name": "web", "namespace": "apps"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": []},
            }
        ],
        NAMESPACES: [
            {"metadata": {"name": "apps", "labels": {"team": "a"}}},
            {"metadata": {"name": "empty"}},
        ],
    }
    server = ListServer(lists)

    def handle(sent: Sent) -> Any:
        # The API server answers in the form asked for: metadata only, or whole objects.
        if sent.path == PODS:
            server.lists[PODS] = META_PODS if sent.accept == METADATA_ONLY else FULL_PODS
        return server.handle(sent)

    return FakeApi(handle), server


def pods_request(api: FakeApi) -> Sent:
    (sent,) = [sent for sent in api.sent if sent.path == PODS]
    return sent


def test_the_snapshot_is_read_from_five_paged_lists() -> None:
    api, _ = cluster([BY_APP, BY_SA_UNANNOTATED])
    snapshot = read_snapshot(KubeClient(api, page_size=2, sleep=no_sleep))
    assert {sent.path for sent in api.sent} == {
        CILIUM_POLICIES,
        ROUTER_POLICIES,
        PODS,
        SERVICES,
        NAMESPACES,
    }
    assert [p["metadata"]["name"] for p in snapshot.policies] == ["web"]  # annotated only
    assert list(snapshot.router_policies) == ["web"]
    assert [pod.name for pod in snapshot.pods] == [f"web-{n}" for n in range(5)]
    assert [svc.name for svc in snapshot.services] == ["web"]
    assert snapshot.namespace_labels == {"apps": {"team": "a"}, "empty": {}}
    # Five pods in pages of two: three pod requests.
    pod_pages = [sent.query for sent in api.sent if sent.path == PODS]
    assert pod_pages == [
        {"fieldSelector": LIVE_PODS, "limit": "2"},
        {"fieldSelector": LIVE_PODS, "limit": "2", "continue": "token-1"},
        {"fieldSelector": LIVE_PODS, "limit": "2", "continue": "token-2"},
    ]
    assert {sent.accept for sent in api.sent if sent.path == NAMESPACES} == {METADATA_ONLY}


def test_pods_are_metadata_only_when_no_annotated_policy_mentions_the_service_account() -> None:
    # The unannotated policy mentions the label, but it is not synced: it does not count.
    api, _ = cluster([BY_APP, BY_SA_UNANNOTATED])
    snapshot = read_snapshot(KubeClient(api, sleep=no_sleep))
    assert pods_request(api).accept == METADATA_ONLY
    assert snapshot.pods[0] == Pod("apps", "web-0", {"app": "web"}, "", "Running")


def test_pods_are_read_whole_when_an_annotated_policy_selects_on_the_service_account() -> None:
    api, _ = cluster([BY_APP, BY_SA])
    snapshot = read_snapshot(KubeClient(api, sleep=no_sleep))
    assert pods_request(api).accept == JSON
    assert snapshot.pods[0] == Pod("apps", "web-0", {"app": "web"}, "gateway", "Running")


@pytest.mark.parametrize(
    ("spec_key", "where", "expected"),
    [
        ("spec", {"endpointSelector": {"matchLabels": {SA: "x"}}}, True),
        ("spec", {"ingress": [{"fromEndpoints": [{"matchLabels": {f"any:{SA}": "x"}}]}]}, True),
        ("specs", [{"endpointSelector": {"matchExpressions": [{"key": SA}]}}], True),
        ("spec", {"endpointSelector": {"matchLabels": {"app": "x"}}}, False),
    ],
)
def test_the_service_account_label_is_found_anywhere_in_spec_or_specs(
    spec_key: str, where: Any, expected: bool
) -> None:
    assert _mentions_service_account([{spec_key: where}]) is expected


def test_a_label_only_in_metadata_does_not_need_pod_specs() -> None:
    assert not _mentions_service_account([{"metadata": {"labels": {SA: "x"}}, "spec": {}}])


def test_a_failed_list_is_a_source_error_naming_it() -> None:
    api, server = cluster([BY_APP])

    def refuse_services(sent: Sent) -> Any:
        if sent.path == SERVICES:
            return status(403, 'services is forbidden: User "job" cannot list resource')
        return server.handle(sent)

    api.handler = refuse_services
    with pytest.raises(SourceError, match=r"^cannot list services: 403 services is forbidden"):
        read_snapshot(KubeClient(api, sleep=no_sleep))


@pytest.mark.parametrize(
    ("to_ports", "target", "expected"),
    [
        (True, "https", True),  # a named target port needs the pods' container ports
        (True, 8443, False),
        (True, "8443", False),
        (False, "https", False),  # without toPorts, ports are not narrowed: nothing to resolve
    ],
)
def test_pod_specs_are_read_for_to_ports_only_when_a_service_targets_a_named_port(
    to_ports: bool, target: Any, expected: bool
) -> None:
    from sync_job.source.cluster import _needs_pod_specs
    from sync_job.source.snapshot import Service

    rule: dict[str, Any] = {"fromCIDR": ["203.0.113.1/32"]}
    if to_ports:
        rule["toPorts"] = [{"ports": [{"port": "443"}]}]
    policy = {"spec": {"endpointSelector": {}, "ingress": [rule]}}
    lb = Service(
        "apps", "web", "LoadBalancer", {"app": "web"}, [{"port": 443, "targetPort": target}]
    )
    assert _needs_pod_specs([policy], [lb]) is expected
