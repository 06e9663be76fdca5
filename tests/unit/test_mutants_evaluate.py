"""Evaluation's own rules: policy names, generations, the Synced message, which of two clashing
policies is refused (creationTimestamp, then name), and the outcome of each failure."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sync_job.model import PolicyOutcome, PolicyTarget, Reason
from sync_job.source.evaluate import evaluate
from sync_job.source.snapshot import ANNOTATION, ClusterSnapshot, pod_from_raw, service_from_raw

NS_KEY = "k8s:io.kubernetes.pod.namespace"


def ccnp(name: Any = "web", *, app: str = "web", created: str | None = None, **meta: Any) -> Any:
    metadata: dict[str, Any] = {"name": name, "annotations": {ANNOTATION: "true"}, **meta}
    if created is not None:
        metadata["creationTimestamp"] = created
    return {
        "metadata": metadata,
        "spec": {
            "endpointSelector": {"matchLabels": {"app": app, NS_KEY: "apps"}},
            "ingress": [{"fromCIDR": ["203.0.113.1/32", "203.0.113.2/32"]}],
        },
    }


def pod(app: str, **labels: str) -> Any:
    return pod_from_raw(
        {
            "metadata": {"name": f"{app}-0", "namespace": "apps", "labels": {"app": app, **labels}},
            "status": {"phase": "Running"},
        }
    )


def lb(app: str, ip: str, ports: list[Any] | None = None) -> Any:
    return service_from_raw(
        {
            "metadata": {"name": f"{app}-lb", "namespace": "apps"},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": app},
                "ports": ports or [{"port": 443, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }
    )


def run(
    *policies: Any, pods: Any = None, services: Any = None, **kw: Any
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    snapshot = ClusterSnapshot(
        list(policies),
        list(pods if pods is not None else [pod("web")]),
        list(services if services is not None else [lb("web", "198.51.100.10")]),
    )
    return evaluate(snapshot, **kw)


def test_a_synced_policy_has_its_full_outcome_and_target() -> None:
    services = [
        lb(
            "web",
            "198.51.100.10",
            [
                {"port": 443, "protocol": "TCP"},
                {"port": 80, "protocol": "TCP"},
                {"port": 53, "protocol": "UDP"},
            ],
        )
    ]
    outcomes, targets = run(ccnp(generation=7), services=services)
    assert outcomes == [
        PolicyOutcome(
            "web",
            Reason.SYNCED,
            "router in sync: 2 source(s) -> 198.51.100.10 (Service apps/web-lb) on "
            "tcp 80,443; udp 53",
            7,
            "198.51.100.10",
            "apps/web-lb",
        )
    ]
    assert [(t.name, t.sources, t.gateway.ip) for t in targets] == [
        ("web", ("203.0.113.1", "203.0.113.2"), "198.51.100.10")
    ]


@pytest.mark.parametrize("generation", [None, "3", 2.0])
def test_a_generation_that_is_not_an_int_reads_as_zero(generation: Any) -> None:
    outcomes, _ = run(ccnp(generation=generation))
    assert outcomes[0].generation == 0
    bad, _ = run(ccnp("UPPER", generation=5))
    assert bad[0].generation == 5


def test_a_failed_policy_keeps_its_generation_and_no_gateway() -> None:
    outcomes, targets = run(ccnp(generation=4), pods=[])
    assert targets == []
    (outcome,) = outcomes
    assert outcome.reason is Reason.DISCOVERY_FAILED
    assert (outcome.generation, outcome.gateway_ip, outcome.gateway_service) == (4, None, None)


def test_failures_are_logged_with_the_policy_reason_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sync_job.source.evaluate"):
        outcomes, _ = run(ccnp("Bad_Name"))
    assert caplog.messages == [f"policy Bad_Name: ValidationFailed: {outcomes[0].message}"]


def test_a_missing_name_is_a_validation_failure() -> None:
    for missing in (None, ""):
        outcomes, targets = run(ccnp(missing))
        assert targets == []
        assert outcomes == [
            PolicyOutcome(
                "",
                Reason.VALIDATION_FAILED,
                "CiliumClusterwideNetworkPolicy: metadata.name is missing",
            )
        ]
    outcomes, _ = run({"spec": {}})
    assert outcomes[0].message == "CiliumClusterwideNetworkPolicy: metadata.name is missing"


def test_a_name_that_is_not_a_string_is_a_validation_failure() -> None:
    outcomes, _ = run(ccnp(12))
    assert outcomes == [
        PolicyOutcome(
            "12",
            Reason.VALIDATION_FAILED,
            "CiliumClusterwideNetworkPolicy '12': metadata.name is not a string",
        )
    ]


@pytest.mark.parametrize("name", ["Web", "web_1", "-web", "web.", "a" * 254, "a..b"])
def test_a_name_that_is_not_a_dns_subdomain_is_a_validation_failure(name: str) -> None:
    outcomes, _ = run(ccnp(name))
    assert outcomes == [
        PolicyOutcome(
            name,
            Reason.VALIDATION_FAILED,
            f"CiliumClusterwideNetworkPolicy {name!r}: metadata.name is not a DNS-1123 subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)",
        )
    ]


@pytest.mark.parametrize("name", ["a" * 253, "a.b-c.d", "0"])
def test_names_kubernetes_accepts_pass(name: str) -> None:
    outcomes, _ = run(ccnp(name))
    assert outcomes[0].reason is Reason.SYNCED


def test_a_name_used_twice_fails_both_and_three_times_says_three() -> None:
    outcomes, targets = run(ccnp(), ccnp())
    assert targets == []
    message = "CiliumClusterwideNetworkPolicy 'web': metadata.name is used by 2 policies"
    assert outcomes == [PolicyOutcome("web", Reason.VALIDATION_FAILED, message)] * 2
    outcomes, _ = run(ccnp(), ccnp(), ccnp())
    assert outcomes[0].message.endswith("is used by 3 policies")


def test_outcomes_are_sorted_by_name() -> None:
    outcomes, targets = run(ccnp("b"), ccnp("c"), ccnp("a"))
    assert [o.name for o in outcomes] == ["a", "b", "c"]
    assert [t.name for t in targets] == ["a", "b", "c"]


def test_a_malformed_gateway_annotation_names_the_annotation_and_value() -> None:
    key = "router-policy-sync.homelab-helper.benfiola.com/gateway"
    outcomes, _ = run(ccnp(annotations={ANNOTATION: "", key: "apps/web/x"}))
    assert outcomes[0].message == (
        f"CiliumClusterwideNetworkPolicy web: metadata.annotations[{key}] 'apps/web/x' is not "
        "<namespace>/<name> of a Service"
    )


def test_annotations_that_are_not_a_mapping_name_no_gateway() -> None:
    policy = ccnp()
    policy["metadata"]["annotations"] = [ANNOTATION]
    outcomes, _ = run(policy)
    assert outcomes[0].reason is Reason.SYNCED


def test_the_cluster_name_defaults_to_default() -> None:
    policy = ccnp()
    policy["spec"]["endpointSelector"]["matchLabels"]["io.cilium.k8s.policy.cluster"] = "default"
    assert run(policy)[0][0].reason is Reason.SYNCED
    assert run(policy, cluster_name="other")[0][0].reason is Reason.DISCOVERY_FAILED


def _clash(first: Any, second: Any) -> dict[str, PolicyOutcome]:
    outcomes, targets = run(
        first,
        second,
        pods=[pod("web"), pod("api")],
        services=[lb("web", "198.51.100.10"), lb("api", "198.51.100.30")],
    )
    refused = {o.name for o in outcomes if not o.ready}
    assert {t.name for t in targets} == {o.name for o in outcomes} - refused
    return {o.name: o for o in outcomes}


def test_of_two_clashing_policies_the_later_created_is_refused_naming_the_earlier() -> None:
    outcomes = _clash(
        ccnp("a-late", created="2026-02-01T00:00:00Z", generation=3),
        ccnp("z-early", app="api", created="2026-01-01T00:00:00Z"),
    )
    assert outcomes["z-early"].ready
    assert outcomes["a-late"] == PolicyOutcome(
        "a-late",
        Reason.VALIDATION_FAILED,
        "CiliumClusterwideNetworkPolicy a-late: source 203.0.113.1 on tcp 443 is already sent "
        "to 198.51.100.30 by CiliumClusterwideNetworkPolicy z-early, which was created earlier; "
        "remove the source from one of them",
        3,
        None,
        None,
    )


def test_clashing_policies_created_at_once_are_ordered_by_name() -> None:
    same = "2026-01-01T00:00:00Z"
    outcomes = _clash(ccnp("b", created=same), ccnp("a", app="api", created=same))
    assert outcomes["a"].ready and not outcomes["b"].ready
    # no creationTimestamp reads as the earliest
    outcomes = _clash(ccnp("a", created=same), ccnp("b", app="api"))
    assert outcomes["b"].ready and not outcomes["a"].ready
    assert "by CiliumClusterwideNetworkPolicy b," in outcomes["a"].message


def test_a_refused_clash_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sync_job.source.evaluate"):
        outcomes = _clash(ccnp("b"), ccnp("a", app="api"))
    assert caplog.messages == [f"policy b: ValidationFailed: {outcomes['b'].message}"]


def test_policies_with_the_same_gateway_never_clash() -> None:
    outcomes, targets = run(ccnp("a"), ccnp("b"))
    assert [o.reason for o in outcomes] == [Reason.SYNCED, Reason.SYNCED]
    assert len(targets) == 2
