"""Gateway discovery: pod selection through the index, Service choice, ingress IP and ports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sync_job.model import Gateway, PolicyError, Reason, ServicePort
from sync_job.source.cilium import PolicySpec, parse_policy
from sync_job.source.discovery import PodIndex, ServiceIndex, find_gateway, service_ports
from sync_job.source.selectors import EndpointSelector, endpoint_labels, matches, parse_selector
from sync_job.source.snapshot import Pod, Service

HTTP = [{"name": "http", "port": 80}]


def policy(*selectors: dict[str, Any], node_rule: bool = False) -> PolicySpec:
    specs: list[dict[str, Any]] = [{"endpointSelector": s} for s in selectors]
    if node_rule:
        specs.append({"nodeSelector": {}})
    return parse_policy({"metadata": {"name": "my-policy"}, "specs": specs})


def pod(name: str, namespace: str = "default", phase: str = "Running", **labels: str) -> Pod:
    return Pod(namespace=namespace, name=name, labels=labels or {"app": "web"}, phase=phase)


def lb(
    name: str,
    namespace: str = "default",
    ips: tuple[str, ...] = ("192.0.2.10",),
    type: str = "LoadBalancer",
    ports: list[Any] | None = None,
    selector: dict[str, str] | None = None,
) -> Service:
    return Service(
        namespace=namespace,
        name=name,
        type=type,
        selector={"app": "web"} if selector is None else selector,
        ports=HTTP if ports is None else ports,
        ingress_ips=ips,
    )


def selector(raw: dict[str, Any]) -> EndpointSelector:
    return parse_selector(raw, "spec.endpointSelector", "o")


def names(pods: list[Pod]) -> list[str]:
    return [f"{p.namespace}/{p.name}" for p in pods]


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        pytest.param([{}], ["b/db-0", "b/web-0", "b/web-2"], id="empty-selects-all-running"),
        pytest.param(
            [{"matchLabels": {"app": "web"}}],
            ["b/web-0", "b/web-2"],
            id="equality-uses-index",
        ),
        pytest.param(
            [{"matchLabels": {"app": "web", "io.kubernetes.pod.namespace": "b"}}],
            ["b/web-0", "b/web-2"],
            id="namespace-key",
        ),
        pytest.param(
            [{"matchLabels": {"app": "db"}}, {"matchLabels": {"app": "web"}}],
            ["b/db-0", "b/web-0", "b/web-2"],
            id="union-sorted",
        ),
        pytest.param(
            [
                {"matchLabels": {"app": "web"}},
                {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]},
            ],
            ["b/db-0", "b/web-0", "b/web-2"],
            id="union-no-duplicates",
        ),
        pytest.param(
            [{"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}],
            ["b/db-0"],
            id="notin-scan",
        ),
        pytest.param([{"matchLabels": {"reserved:host": ""}}], [], id="reserved-selects-none"),
        pytest.param([{"matchLabels": {"app": "cache"}}], [], id="no-match"),
        pytest.param([], [], id="no-selectors"),
    ],
)
def test_pod_index_select(selectors: list[dict[str, Any]], expected: list[str]) -> None:
    pods = [
        pod("web-2", "b"),
        pod("web-0", "b"),
        pod("db-0", "b", app="db"),
        pod("web-1", "a", phase="Pending"),
        pod("web-3", "a", phase="Succeeded"),
        pod("web-4", "a", phase="Failed"),
    ]
    index = PodIndex(pods, {})
    assert names(index.select([selector(s) for s in selectors])) == expected


def test_pod_index_namespace_labels_and_cluster() -> None:
    index = PodIndex([pod("w", "shop"), pod("w", "ops")], {"shop": {"team": "pay"}}, "home")
    chosen = selector(
        {
            "matchLabels": {
                "io.cilium.k8s.namespace.labels.team": "pay",
                "io.cilium.k8s.policy.cluster": "home",
            }
        }
    )
    assert names(index.select([chosen])) == ["shop/w"]


LABELS = st.dictionaries(st.sampled_from(["app", "tier", "k"]), st.sampled_from(["x", "y", "z"]))
REQUIREMENT = st.one_of(
    st.builds(
        lambda k, op, vs: {"key": k, "operator": op, "values": vs},
        st.sampled_from(["app", "tier", "k8s:k", "reserved:app", "io.kubernetes.pod.namespace"]),
        st.sampled_from(["In", "NotIn"]),
        st.lists(st.sampled_from(["x", "y", "n1"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda k, op: {"key": k, "operator": op},
        st.sampled_from(["app", "tier", "container:k"]),
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["n1", "n2"]), LABELS), max_size=12),
    st.lists(st.lists(REQUIREMENT, max_size=3), min_size=1, max_size=3),
)
# Fixed cases, run every time: no pods at all; an empty selector (matches every pod); a
# DoesNotExist that only unlabelled pods pass; In on the namespace label across both namespaces;
# a `k8s:`-prefixed key; NotIn, which pods without the key also pass.
@example([], [[]])
@example([("n1", {}), ("n2", {"app": "x"})], [[]])
@example([("n1", {}), ("n1", {"tier": "y"})], [[{"key": "tier", "operator": "DoesNotExist"}]])
@example(
    [("n1", {"app": "x"}), ("n2", {"app": "x"})],
    [[{"key": "io.kubernetes.pod.namespace", "operator": "In", "values": ["n1"]}]],
)
@example([("n2", {"k": "x"})], [[{"key": "k8s:k", "operator": "In", "values": ["x"]}]])
@example(
    [("n1", {"app": "y"}), ("n1", {})],
    [[{"key": "app", "operator": "NotIn", "values": ["x"]}], [{"key": "k", "operator": "Exists"}]],
)
def test_pod_index_agrees_with_a_full_scan(
    pod_specs: list[tuple[str, dict[str, str]]], expressions: list[list[dict[str, Any]]]
) -> None:
    pods = [Pod(ns, f"p{i}", labels) for i, (ns, labels) in enumerate(pod_specs)]
    selectors = [selector({"matchExpressions": e}) for e in expressions]
    expected = [
        p
        for p in sorted(pods, key=lambda p: (p.namespace, p.name))
        if any(matches(s, endpoint_labels(p, {})) for s in selectors)
    ]
    assert PodIndex(pods, {}).select(selectors) == expected


def gateway(pods: list[Pod], services: list[Service], spec: PolicySpec | None = None) -> Gateway:
    chosen = spec or policy({"matchLabels": {"app": "web"}})
    return find_gateway(chosen, PodIndex(pods, {}), ServiceIndex(services))


@pytest.mark.parametrize(
    ("pods", "services", "expected"),
    [
        pytest.param([pod("web-0")], [lb("web")], ("default", "web", "192.0.2.10"), id="simple"),
        pytest.param(
            [pod("web-0")],
            [lb("web", ips=("192.0.2.7", "192.0.2.1"))],
            ("default", "web", "192.0.2.7"),
            id="first-ip",
        ),
        pytest.param(
            [pod("web-0")], [lb("b"), lb("a")], ("default", "a", "192.0.2.10"), id="first-by-name"
        ),
        pytest.param(
            [pod("w", "zeta"), pod("w", "alpha")],
            [lb("a", "zeta"), lb("z", "alpha")],
            ("alpha", "z", "192.0.2.10"),
            id="first-by-namespace",
        ),
        pytest.param(
            [pod("web-0")],
            [lb("a", ips=()), lb("b", ips=("192.0.2.2",))],
            ("default", "b", "192.0.2.2"),
            id="skips-service-without-ip",
        ),
        pytest.param(
            [pod("web-0")],
            [lb("a", type="ClusterIP"), lb("b", "other"), lb("c")],
            ("default", "c", "192.0.2.10"),
            id="only-lb-in-pod-namespace",
        ),
        pytest.param(
            [pod("web-0", app="web", tier="front")],
            [
                lb("a", selector={"app": "web", "tier": "back"}),
                lb("b", selector={"app": "web", "tier": "front"}),
            ],
            ("default", "b", "192.0.2.10"),
            id="whole-selector-must-match",
        ),
        pytest.param(
            [pod("web-0", app="web", **{"pod-template-hash": "h1"})],
            [lb("a", selector={"pod-template-hash": "h1"})],
            ("default", "a", "192.0.2.10"),
            id="service-uses-raw-pod-labels",
        ),
    ],
)
def test_find_gateway(
    pods: list[Pod], services: list[Service], expected: tuple[str, str, str]
) -> None:
    found = gateway(pods, services)
    assert (found.namespace, found.name, found.ip) == expected
    assert found.ports == (ServicePort("tcp", 80),)


def test_service_without_selector_is_ignored() -> None:
    bare = Service("default", "bare", "LoadBalancer", {}, HTTP, ("192.0.2.1",))
    with pytest.raises(PolicyError, match="no LoadBalancer Service selects"):
        gateway([pod("web-0")], [bare])


WEB_PODS = [pod(f"web-{i}") for i in range(5)]


@pytest.mark.parametrize(
    ("spec", "pods", "services", "message"),
    [
        pytest.param(
            policy(node_rule=True),
            WEB_PODS,
            [lb("web")],
            "CiliumClusterwideNetworkPolicy my-policy has no rule with an endpointSelector",
            id="only-node-rules",
        ),
        pytest.param(
            policy({"matchLabels": {"app": "db"}}),
            WEB_PODS,
            [lb("web")],
            "no running pod matches specs[0].endpointSelector of "
            "CiliumClusterwideNetworkPolicy my-policy",
            id="no-pod",
        ),
        pytest.param(
            policy({"matchLabels": {"app": "db"}}, {"matchLabels": {"app": "x"}}),
            [],
            [],
            "no running pod matches specs[0].endpointSelector, "
            "specs[1].endpointSelector of CiliumClusterwideNetworkPolicy my-policy",
            id="no-pod-several-selectors",
        ),
        pytest.param(
            None,
            [pod("web-0", phase="Succeeded")],
            [lb("web")],
            "no running pod matches specs[0].endpointSelector of "
            "CiliumClusterwideNetworkPolicy my-policy",
            id="only-finished-pods",
        ),
        pytest.param(
            None,
            WEB_PODS[:1],
            [lb("web", selector={"app": "other"})],
            "no LoadBalancer Service selects the matching pod (default/web-0)",
            id="no-service-one-pod",
        ),
        pytest.param(
            None,
            WEB_PODS[:2],
            [lb("web", type="NodePort")],
            "no LoadBalancer Service selects the 2 matching pods (default/web-0, default/web-1)",
            id="no-service-two-pods",
        ),
        pytest.param(
            None,
            WEB_PODS,
            [lb("web", "other")],
            "no LoadBalancer Service selects the 5 matching pods (default/web-0, "
            "default/web-1, default/web-2 and 2 more)",
            id="no-service-capped",
        ),
        pytest.param(
            None,
            WEB_PODS,
            [lb("web", ips=())],
            "LoadBalancer Service default/web has no IPv4 ingress IP yet "
            "(status.loadBalancer.ingress has none)",
            id="pending-ip",
        ),
        pytest.param(
            None,
            WEB_PODS,
            [lb("b", ips=()), lb("a", ips=())],
            "LoadBalancer Services default/a, default/b have no IPv4 ingress IP yet "
            "(status.loadBalancer.ingress has none)",
            id="pending-ips",
        ),
    ],
)
def test_find_gateway_discovery_failures(
    spec: PolicySpec | None, pods: list[Pod], services: list[Service], message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        gateway(pods, services, spec)
    assert caught.value.reason is Reason.DISCOVERY_FAILED
    assert caught.value.message == message


def test_find_gateway_bad_ports_are_validation_failures() -> None:
    with pytest.raises(PolicyError) as caught:
        gateway([pod("web-0")], [lb("web", ports=[{"port": "80"}])])
    assert caught.value.reason is Reason.VALIDATION_FAILED
    assert caught.value.message == 'Service default/web: spec.ports[0].port "80" is not a port ' + (
        "number from 1 to 65535"
    )


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        pytest.param([{"port": 443}], [("tcp", 443)], id="tcp-default"),
        pytest.param([{"port": 443, "protocol": None}], [("tcp", 443)], id="null-protocol-is-tcp"),
        pytest.param(
            [
                {"port": 53, "protocol": "UDP"},
                {"port": 53, "protocol": "TCP"},
                {"port": 9, "protocol": "SCTP"},
                {"port": 22},
                {"port": 22, "name": "x"},
            ],
            [("sctp", 9), ("tcp", 22), ("tcp", 53), ("udp", 53)],
            id="sorted-unique",
        ),
        pytest.param([{"port": 1}, {"port": 65535}], [("tcp", 1), ("tcp", 65535)], id="bounds"),
    ],
)
def test_service_ports(ports: list[Any], expected: list[tuple[str, int]]) -> None:
    assert service_ports(lb("web", ports=ports)) == tuple(ServicePort(*p) for p in expected)


P = "Service default/web: spec.ports"


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        pytest.param([], f"{P} is empty", id="no-ports"),
        pytest.param(
            [{"port": 80}, "80"],
            f'{P}[1] "80" is not a mapping with a port',
            id="entry-not-mapping",
        ),
        pytest.param(
            [{"port": 80}, {"port": 80, "protocol": "ICMP"}],
            f'{P}[1].protocol "ICMP" is not TCP, UDP or SCTP',
            id="icmp",
        ),
        pytest.param(
            [{"port": 80, "protocol": "tcp"}],
            f'{P}[0].protocol "tcp" is not TCP, UDP or SCTP',
            id="lowercase-protocol",
        ),
        pytest.param(
            [{"port": 80, "protocol": 6}],
            f"{P}[0].protocol 6 is not TCP, UDP or SCTP",
            id="numeric-protocol",
        ),
        pytest.param(
            [{"protocol": "TCP"}],
            f"{P}[0].port null is not a port number from 1 to 65535",
            id="missing-port",
        ),
        pytest.param(
            [{"port": "80"}],
            f'{P}[0].port "80" is not a port number from 1 to 65535',
            id="string-port",
        ),
        pytest.param(
            [{"port": "http"}],
            f'{P}[0].port "http" is not a port number from 1 to 65535',
            id="named-port",
        ),
        pytest.param(
            [{"port": True}],
            f"{P}[0].port true is not a port number from 1 to 65535",
            id="bool-port",
        ),
        pytest.param(
            [{"port": 80.0}],
            f"{P}[0].port 80.0 is not a port number from 1 to 65535",
            id="float-port",
        ),
        pytest.param(
            [{"port": 0}], f"{P}[0].port 0 is not a port number from 1 to 65535", id="port-zero"
        ),
        pytest.param(
            [{"port": 65536}],
            f"{P}[0].port 65536 is not a port number from 1 to 65535",
            id="port-too-big",
        ),
    ],
)
def test_service_port_errors(ports: list[Any], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        service_ports(lb("web", ports=ports))
    assert caught.value.reason is Reason.VALIDATION_FAILED
    assert caught.value.message == message


def test_scale_3000_pods_600_services_300_policies() -> None:
    pods = [
        Pod(f"ns{i % 30}", f"pod-{i}", {"app": f"app{i % 600}", "pod-template-hash": str(i)})
        for i in range(3000)
    ]
    services = [
        lb(f"svc-{i}", f"ns{i % 30}", ips=(f"192.0.2.{i % 250 + 1}",), selector={"app": f"app{i}"})
        for i in range(600)
    ]
    policies = [policy({"matchLabels": {"app": f"app{i * 2}"}}) for i in range(299)]
    pod_index, service_index = PodIndex(pods, {}), ServiceIndex(services)
    found = [find_gateway(p, pod_index, service_index) for p in policies]
    # a policy selecting every pod has 600 candidates: it must name its gateway Service
    found.append(find_gateway(policy({}), pod_index, service_index, gateway_ref=("ns0", "svc-0")))
    assert len(found) == 300  # speed at this scale is measured by bench/, not asserted here
    assert found[0] == Gateway("ns0", "svc-0", "192.0.2.1", (ServicePort("tcp", 80),))
    assert found[-1] == found[0]


def test_ipv6_ingress_addresses_are_never_a_gateway() -> None:
    from sync_job.source.snapshot import service_from_raw

    raw = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]},
        "status": {
            "loadBalancer": {
                "ingress": [{"ip": "2001:db8::1"}, {"hostname": "lb.example"}, {"ip": "192.0.2.9"}]
            }
        },
    }
    assert service_from_raw(raw).ingress_ips == ("192.0.2.9",)
