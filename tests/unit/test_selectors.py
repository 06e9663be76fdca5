"""Endpoint selectors: key prefixes, operators, the labels Cilium gives a pod, and parse errors."""

from __future__ import annotations

from typing import Any

import pytest

from sync_job.model import PolicyError, Reason
from sync_job.source.selectors import endpoint_labels, matches, parse_selector, split_key
from sync_job.source.snapshot import Pod

OWNER = "CiliumClusterwideNetworkPolicy my-policy"
FIELD = "spec.endpointSelector"
NAMESPACE_LABELS = {"shop": {"team": "payments", "kubernetes.io/metadata.name": "shop"}}

WEB = Pod(
    namespace="shop",
    name="web-0",
    labels={
        "app": "web",
        "tier": "front",
        "pod-template-hash": "abc123",
        "statefulset.kubernetes.io/pod-name": "web-0",
        "app.kubernetes.io/name": "web",
        "io.cilium.k8s.policy.serviceaccount": "admin",
        "io.kubernetes.pod.namespace": "kube-system",
        "annotation.note": "x",
    },
    service_account="web-sa",
)


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        entry["values"] = list(values)
    return entry


@pytest.mark.parametrize(
    ("raw_key", "expected"),
    [
        pytest.param("app", ("any", "app"), id="no-prefix-is-any"),
        pytest.param("k8s:app", ("k8s", "app"), id="k8s-prefix"),
        pytest.param("any:app", ("any", "app"), id="any-prefix"),
        pytest.param("reserved:health", ("reserved", "health"), id="reserved-prefix"),
        pytest.param("container:app", ("container", "app"), id="container-prefix"),
        pytest.param("k8s:a:b", ("k8s", "a:b"), id="first-colon-splits"),
        pytest.param(":app", ("any", "app"), id="empty-source-is-any"),
        pytest.param("$host", ("reserved", "host"), id="dollar-is-reserved"),
        pytest.param(
            "k8s.io.kubernetes.pod.namespace",
            ("any", "k8s.io.kubernetes.pod.namespace"),
            id="dotted-pseudo-prefix-is-a-plain-key",
        ),
    ],
)
def test_split_key(raw_key: str, expected: tuple[str, str]) -> None:
    assert split_key(raw_key) == expected


def test_endpoint_labels_filter_and_add_special_labels() -> None:
    assert endpoint_labels(WEB, NAMESPACE_LABELS, cluster_name="home") == {
        "app": "web",
        "tier": "front",
        "app.kubernetes.io/name": "web",
        "io.kubernetes.pod.namespace": "shop",
        "io.cilium.k8s.policy.serviceaccount": "web-sa",
        "io.cilium.k8s.policy.cluster": "home",
        "io.cilium.k8s.namespace.labels.team": "payments",
        "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "shop",
    }


@pytest.mark.parametrize(
    "key",
    [
        "io.kubernetes.container.name",
        "kubernetes.io/hostname",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-completion-index",
        "batch.kubernetes.io/controller-uid",
        "beta.kubernetes.io/arch",
        "k8s.io/x",
        "pod-template-generation",
        "pod-template-hash",
        "controller-revision-hash",
        "annotation.foo",
        "controller-uid",
        "etcd_node",
        "io.cilium.k8s.anything",
    ],
)
def test_endpoint_labels_drop_excluded_pod_label(key: str) -> None:
    pod = Pod(namespace="ns", name="p", labels={key: "v"})
    assert key not in endpoint_labels(pod, {})


def test_endpoint_labels_defaults() -> None:
    pod = Pod(namespace="ns", name="p", labels={"app": "x"})
    assert endpoint_labels(pod, {}) == {
        "app": "x",
        "io.kubernetes.pod.namespace": "ns",
        "io.cilium.k8s.policy.cluster": "default",
    }


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param({}, True, id="empty-selects-all"),
        pytest.param({"matchLabels": {}, "matchExpressions": []}, True, id="empty-parts"),
        pytest.param({"matchLabels": {"app": "web"}}, True, id="plain-key"),
        pytest.param({"matchLabels": {"k8s:app": "web"}}, True, id="k8s-prefix"),
        pytest.param({"matchLabels": {"any:app": "web"}}, True, id="any-prefix"),
        pytest.param({"matchLabels": {"app": "db"}}, False, id="other-value"),
        pytest.param({"matchLabels": {"app": "web", "tier": "back"}}, False, id="labels-are-anded"),
        pytest.param({"matchLabels": {"reserved:health": ""}}, False, id="reserved-key-no-pod"),
        pytest.param({"matchLabels": {"container:app": "web"}}, False, id="container-key-no-pod"),
        pytest.param(
            {"matchLabels": {"reserved:app": "web"}}, False, id="reserved-shadows-pod-key"
        ),
        pytest.param(
            {"matchExpressions": [expr("reserved:host", "DoesNotExist")]},
            True,
            id="reserved-key-is-absent-on-pods",
        ),
        pytest.param({"matchExpressions": [expr("app", "In", "db", "web")]}, True, id="in"),
        pytest.param({"matchExpressions": [expr("app", "In", "db")]}, False, id="in-miss"),
        pytest.param({"matchExpressions": [expr("app", "NotIn", "db")]}, True, id="notin"),
        pytest.param({"matchExpressions": [expr("app", "NotIn", "web")]}, False, id="notin-miss"),
        pytest.param(
            {"matchExpressions": [expr("color", "NotIn", "red")]},
            True,
            id="notin-matches-missing-key",
        ),
        pytest.param({"matchExpressions": [expr("tier", "Exists")]}, True, id="exists"),
        pytest.param({"matchExpressions": [expr("color", "Exists")]}, False, id="exists-miss"),
        pytest.param(
            {"matchExpressions": [expr("color", "DoesNotExist")]}, True, id="doesnotexist"
        ),
        pytest.param(
            {"matchExpressions": [expr("tier", "DoesNotExist")]}, False, id="doesnotexist-miss"
        ),
        pytest.param(
            {
                "matchExpressions": [
                    expr("app", "In", "web"),
                    expr("tier", "Exists"),
                    expr("x", "DoesNotExist"),
                ]
            },
            True,
            id="expressions-are-anded",
        ),
        pytest.param(
            {"matchLabels": {"io.kubernetes.pod.namespace": "shop"}}, True, id="namespace-key"
        ),
        pytest.param(
            {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "shop"}},
            True,
            id="namespace-key-k8s-prefix",
        ),
        pytest.param(
            {"matchLabels": {"io.kubernetes.pod.namespace": "kube-system"}},
            False,
            id="namespace-label-cannot-be-spoofed",
        ),
        pytest.param(
            {"matchExpressions": [expr("io.kubernetes.pod.namespace", "NotIn", "kube-system")]},
            True,
            id="namespace-notin",
        ),
        pytest.param(
            {"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "web-sa"}},
            True,
            id="serviceaccount",
        ),
        pytest.param(
            {"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "admin"}},
            False,
            id="serviceaccount-cannot-be-spoofed",
        ),
        pytest.param(
            {"matchLabels": {"io.cilium.k8s.policy.cluster": "default"}}, True, id="cluster-default"
        ),
        pytest.param(
            {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "payments"}},
            True,
            id="namespace-labels",
        ),
        pytest.param(
            {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "ops"}},
            False,
            id="namespace-labels-other-value",
        ),
        pytest.param(
            {"matchLabels": {"pod-template-hash": "abc123"}}, False, id="excluded-label-invisible"
        ),
        pytest.param(
            {"matchLabels": {"statefulset.kubernetes.io/pod-name": "web-0"}},
            False,
            id="excluded-pod-name-invisible",
        ),
        pytest.param(
            {"matchLabels": {"app.kubernetes.io/name": "web"}}, True, id="app-kubernetes-io-kept"
        ),
        pytest.param(
            {"matchExpressions": [expr("pod-template-hash", "DoesNotExist")]},
            True,
            id="excluded-label-counts-as-absent",
        ),
        pytest.param(
            {"matchLabels": {"k8s.io.kubernetes.pod.namespace": "shop"}},
            False,
            id="dotted-pseudo-prefix-matches-nothing",
        ),
    ],
)
def test_matches(selector: dict[str, Any], expected: bool) -> None:
    labels = endpoint_labels(WEB, NAMESPACE_LABELS)
    assert matches(parse_selector(selector, FIELD, OWNER), labels) is expected


def test_cluster_name_parameter() -> None:
    selector = parse_selector({"matchLabels": {"io.cilium.k8s.policy.cluster": "home"}}, FIELD, "o")
    assert not matches(selector, endpoint_labels(WEB, {}))
    assert matches(selector, endpoint_labels(WEB, {}, cluster_name="home"))


def test_missing_namespace_labels_mean_none() -> None:
    selector = parse_selector(
        {"matchExpressions": [expr("io.cilium.k8s.namespace.labels.team", "DoesNotExist")]},
        FIELD,
        OWNER,
    )
    assert matches(selector, endpoint_labels(WEB, {}))
    assert not matches(selector, endpoint_labels(WEB, NAMESPACE_LABELS))


def test_selector_is_hashable_and_compares_by_requirements() -> None:
    a = parse_selector({"matchLabels": {"app": "web"}}, "spec.endpointSelector", OWNER)
    b = parse_selector({"matchLabels": {"k8s:app": "web"}}, "specs[0].endpointSelector", OWNER)
    assert a == b
    assert len({a, b}) == 1


E = f"{OWNER}: {FIELD}"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        pytest.param(["app"], f'{E} ["app"] is not a label selector (a mapping)', id="not-mapping"),
        pytest.param(
            {"matchLabels": ["app"]},
            f'{E}.matchLabels ["app"] is not a mapping of label keys to values',
            id="matchlabels-not-mapping",
        ),
        pytest.param(
            {"matchLabels": {"replicas": 3}},
            f'{E}.matchLabels["replicas"] 3 is not a string (quote label values)',
            id="matchlabels-int-value",
        ),
        pytest.param(
            {"matchLabels": {"on": True}},
            f'{E}.matchLabels["on"] true is not a string (quote label values)',
            id="matchlabels-bool-value",
        ),
        pytest.param(
            {"matchLabels": {"app": None}},
            f'{E}.matchLabels["app"] null is not a string (quote label values)',
            id="matchlabels-null-value",
        ),
        pytest.param(
            {"matchLabels": {1: "x"}},
            f"{E}.matchLabels[1] 1 is not a non-empty label key",
            id="matchlabels-int-key",
        ),
        pytest.param(
            {"matchLabels": {"k8s:": "x"}},
            f'{E}.matchLabels["k8s:"] "k8s:" has no label key after its source prefix',
            id="matchlabels-prefix-only",
        ),
        pytest.param(
            {"matchExpressions": {"key": "a"}},
            f'{E}.matchExpressions {{"key": "a"}} is not a list',
            id="expressions-not-list",
        ),
        pytest.param(
            {"matchExpressions": ["a"]},
            f'{E}.matchExpressions[0] "a" is not a mapping with key, operator and values',
            id="expression-not-mapping",
        ),
        pytest.param(
            {"matchExpressions": [expr("app", "in", "web")]},
            f'{E}.matchExpressions[0].operator "in" is not In, NotIn, Exists or DoesNotExist',
            id="lowercase-operator",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "app", "values": ["x"]}]},
            f"{E}.matchExpressions[0].operator null is not In, NotIn, Exists or DoesNotExist",
            id="missing-operator",
        ),
        pytest.param(
            {"matchExpressions": [expr("app", "In")]},
            f"{E}.matchExpressions[0].values null must be a non-empty list for In",
            id="in-without-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
            f"{E}.matchExpressions[0].values [] must be a non-empty list for NotIn",
            id="notin-empty-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": "web"}]},
            f'{E}.matchExpressions[0].values "web" must be a non-empty list for In',
            id="in-values-string",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", 2]}]},
            f"{E}.matchExpressions[0].values[1] 2 is not a string",
            id="in-value-int",
        ),
        pytest.param(
            {"matchExpressions": [expr("app", "Exists", "x")]},
            f'{E}.matchExpressions[0].values ["x"] must be empty for Exists',
            id="exists-with-values",
        ),
        pytest.param(
            {"matchExpressions": [expr("app", "DoesNotExist", "x")]},
            f'{E}.matchExpressions[0].values ["x"] must be empty for DoesNotExist',
            id="doesnotexist-with-values",
        ),
        pytest.param(
            {"matchExpressions": [{"operator": "Exists"}]},
            f"{E}.matchExpressions[0].key null is not a non-empty label key",
            id="missing-key",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "", "operator": "Exists"}]},
            f'{E}.matchExpressions[0].key "" is not a non-empty label key',
            id="empty-key",
        ),
    ],
)
def test_parse_selector_errors(selector: Any, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_selector(selector, FIELD, OWNER)
    assert caught.value.reason is Reason.VALIDATION_FAILED
    assert caught.value.message == message


@pytest.mark.parametrize(
    "values",
    [pytest.param(None, id="values-absent"), pytest.param([], id="values-empty-list")],
)
def test_exists_accepts_absent_or_empty_values(values: list[str] | None) -> None:
    selector = parse_selector(
        {"matchExpressions": [{"key": "app", "operator": "Exists", "values": values}]}, FIELD, OWNER
    )
    assert matches(selector, {"app": "x"})
