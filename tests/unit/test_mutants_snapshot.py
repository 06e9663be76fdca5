"""The snapshot boundary: raw API dicts of pods and Services to the typed values a pass uses,
with Kubernetes' defaults and junk tolerated, and the sync annotation."""

from __future__ import annotations

from typing import Any

import pytest

from sync_job.source.snapshot import (
    ANNOTATION,
    GATEWAY_ANNOTATION,
    GATEWAY_ANNOTATIONS,
    LATER_GROUP,
    ClusterSnapshot,
    Pod,
    Service,
    is_annotated,
    is_ipv4,
    pod_from_raw,
    service_from_raw,
)


def test_annotation_names_are_the_go_controllers() -> None:
    assert ANNOTATION == "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"
    assert GATEWAY_ANNOTATION == "router-policy-sync.homelab-helper.benfiola.com/gateway"
    assert LATER_GROUP == "router-policy-sync.homelab-images.benfiola.com"
    assert GATEWAY_ANNOTATIONS == (
        GATEWAY_ANNOTATION,
        "router-policy-sync.homelab-images.benfiola.com/gateway",
    )


def test_a_full_pod() -> None:
    raw = {
        "metadata": {"namespace": "shop", "name": "web-1", "labels": {"app": "web", "n": 1}},
        "spec": {
            "serviceAccountName": "web-sa",
            "serviceAccount": "legacy",
            "containers": [
                {"ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9}]},
                {
                    "ports": [
                        {"name": "http", "containerPort": 8081},
                        {"name": "dns", "containerPort": 53},
                    ]
                },
            ],
        },
        "status": {"phase": "Running"},
    }
    assert pod_from_raw(raw) == Pod(
        namespace="shop",
        name="web-1",
        labels={"app": "web", "n": "1"},
        service_account="web-sa",
        phase="Running",
        container_ports={"http": 8080, "dns": 53},  # the first container naming a port wins
    )


def test_an_empty_pod_gets_kubernetes_defaults() -> None:
    assert pod_from_raw({}) == Pod(
        namespace="default", name="", labels={}, service_account="", phase="", container_ports={}
    )
    assert pod_from_raw({"metadata": None, "spec": None, "status": None}) == pod_from_raw({})


def test_the_legacy_service_account_field_is_read_when_the_new_one_is_absent() -> None:
    assert pod_from_raw({"spec": {"serviceAccount": "old"}}).service_account == "old"


@pytest.mark.parametrize(
    "containers",
    [
        None,
        "junk",
        ["junk", {"ports": "junk"}, {"ports": ["junk", {"name": 1, "containerPort": 1}]}],
        [{"ports": [{"name": "p", "containerPort": "80"}, {"name": "q", "containerPort": True}]}],
        [{"ports": [{"name": "p"}]}],
    ],
)
def test_junk_container_ports_are_skipped(containers: Any) -> None:
    assert pod_from_raw({"spec": {"containers": containers}}).container_ports == {}


def test_label_values_become_strings_and_none_empty() -> None:
    pod = pod_from_raw({"metadata": {"labels": {"a": None, 2: True}}})
    assert pod.labels == {"a": "", "2": "True"}
    assert pod_from_raw({"metadata": {"labels": ["a"]}}).labels == {}


def test_a_full_loadbalancer_service() -> None:
    raw = {
        "metadata": {"namespace": "shop", "name": "web"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
        "status": {
            "loadBalancer": {
                "ingress": [
                    {"ip": "2001:db8::1"},
                    {"hostname": "lb.example"},
                    "junk",
                    {"ip": "203.0.113.5"},
                    {"ip": "10.0.0.5"},
                ]
            }
        },
    }
    assert service_from_raw(raw) == Service(
        namespace="shop",
        name="web",
        type="LoadBalancer",
        selector={"app": "web"},
        ports=[{"port": 80, "protocol": "TCP"}],
        ingress_ips=("203.0.113.5", "10.0.0.5"),
        ingress_ips6=("2001:db8::1",),
    )


def test_an_empty_service_gets_kubernetes_defaults() -> None:
    assert service_from_raw({}) == Service(
        namespace="default", name="", type="ClusterIP", selector={}, ports=[], ingress_ips=()
    )
    junk = {"spec": {"ports": {"port": 80}}, "status": {"loadBalancer": None}}
    assert service_from_raw(junk).ports == []
    assert service_from_raw({"status": {"loadBalancer": {"ingress": None}}}).ingress_ips == ()


@pytest.mark.parametrize(
    ("value", "ipv4"),
    [
        ("10.0.0.5", True),
        ("0.0.0.0", True),
        ("10.0.0.5/32", False),
        ("10.0.0", False),
        ("::1", False),
        ("", False),
        (None, False),
        (167772165, False),  # an int is not written as an address
    ],
)
def test_is_ipv4(value: Any, ipv4: bool) -> None:
    assert is_ipv4(value) is ipv4


@pytest.mark.parametrize(
    ("value", "selected"),
    [("", True), ("true", True), ("any", True), ("false", False), ("No", False), ("0", False)],
)
def test_is_annotated_unless_the_value_says_no(value: str, selected: bool) -> None:
    assert is_annotated({"metadata": {"annotations": {ANNOTATION: value}}}) is selected


def test_is_annotated_needs_the_key_in_a_mapping() -> None:
    assert not is_annotated({"metadata": {"annotations": {GATEWAY_ANNOTATION: "a/b"}}})
    assert not is_annotated({"metadata": {"annotations": [ANNOTATION]}})
    assert not is_annotated({"metadata": {"annotations": None}})
    assert not is_annotated({"metadata": None})
    assert not is_annotated({})


def test_snapshot_defaults() -> None:
    snapshot = ClusterSnapshot(policies=[], pods=[], services=[])
    assert snapshot.namespace_labels == {}
    assert snapshot.router_policies is None
    assert Pod("n", "p", {}).phase == "Running"
    assert Pod("n", "p", {}).service_account == ""
    assert Service("n", "s", "LoadBalancer", {}, []).ingress_ips == ()
