"""Finding the gateway of a policy: its selected pods, the LoadBalancer Service in front of them,
that Service's first ingress IP and its validated ports.

Owns the per-run indexes (`PodIndex`, `ServiceIndex`), built once from the snapshot so that each
policy is resolved without scanning every pod and Service, and the DiscoveryFailed messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sync_job.model import Gateway, PolicyError, Reason, ServicePort
from sync_job.source.cilium import KIND, PolicySpec
from sync_job.source.selectors import EndpointSelector, endpoint_labels, field_error, matches
from sync_job.source.snapshot import Pod, Service

INACTIVE_PHASES = frozenset({"Succeeded", "Failed"})
PROTOCOLS = ("TCP", "UDP", "SCTP")
LISTED_NAMES = 3


class PodIndex:
    """Live pods with their endpoint labels, and an inverted index (key, value) -> pod positions."""

    def __init__(
        self,
        pods: Sequence[Pod],
        namespace_labels: Mapping[str, Mapping[str, str]],
        cluster_name: str = "default",
    ) -> None:
        live = [pod for pod in pods if pod.phase not in INACTIVE_PHASES]
        self._pods = sorted(live, key=lambda pod: (pod.namespace, pod.name))
        self._labels = [endpoint_labels(p, namespace_labels, cluster_name) for p in self._pods]
        self._by_label: dict[tuple[str, str], list[int]] = {}
        for position, labels in enumerate(self._labels):
            for pair in labels.items():
                self._by_label.setdefault(pair, []).append(position)

    def select(self, selectors: Sequence[EndpointSelector]) -> list[Pod]:
        """Pods any of the selectors match, sorted by (namespace, name)."""
        chosen: set[int] = set()
        for selector in selectors:
            chosen.update(
                i for i in self._candidates(selector) if matches(selector, self._labels[i])
            )
        return [self._pods[i] for i in sorted(chosen)]

    def _candidates(self, selector: EndpointSelector) -> Iterable[int]:
        """The fewest pods an equality (`In`) requirement allows; every pod if there is none."""
        best: Sequence[int] | None = None
        for requirement in selector.requirements:
            if requirement.operator != "In":
                continue
            if not requirement.on_pods:
                return ()
            hits: Sequence[int] = [
                i
                for value in requirement.values
                for i in self._by_label.get((requirement.key, value), ())
            ]
            if best is None or len(hits) < len(best):
                best = hits
        return range(len(self._pods)) if best is None else best


class ServiceIndex:
    """LoadBalancer Services with a selector, indexed by (namespace, one selector pair)."""

    def __init__(self, services: Sequence[Service]) -> None:
        self._by_pair: dict[tuple[str, str, str], list[Service]] = {}
        for service in services:
            if service.type == "LoadBalancer" and service.selector:
                key, value = min(service.selector.items())
                self._by_pair.setdefault((service.namespace, key, value), []).append(service)

    def selecting(self, pod: Pod) -> list[Service]:
        """LoadBalancer Services in the pod's namespace whose whole selector its labels meet."""
        return [
            service
            for key, value in pod.labels.items()
            for service in self._by_pair.get((pod.namespace, key, value), ())
            if all(pod.labels.get(k) == v for k, v in service.selector.items())
        ]


def find_gateway(policy: PolicySpec, pods: PodIndex, services: ServiceIndex) -> Gateway:
    """The first (by namespace, name) LoadBalancer Service with an IP in front of the policy's
    pods; raises DiscoveryFailed when something is missing, ValidationFailed for bad ports."""
    if not policy.selectors:
        raise _missing(f"{KIND} {policy.name} has no rule with an endpointSelector")
    selected = pods.select(policy.selectors)
    if not selected:
        fields = _names(dict.fromkeys(s.path for s in policy.selectors))
        raise _missing(f"no running pod matches {fields} of {KIND} {policy.name}")
    found = {(s.namespace, s.name): s for pod in selected for s in services.selecting(pod)}
    if not found:
        names = _names(f"{p.namespace}/{p.name}" for p in selected)
        many = len(selected) != 1
        what = f"the {len(selected)} matching pods" if many else "the matching pod"
        raise _missing(f"no LoadBalancer Service selects {what} ({names})")
    candidates = [found[key] for key in sorted(found)]
    for service in candidates:
        if service.ingress_ips:
            return Gateway(
                namespace=service.namespace,
                name=service.name,
                ip=service.ingress_ips[0],
                ports=service_ports(service),
            )
    names = _names(f"{s.namespace}/{s.name}" for s in candidates)
    subject = "Service {} has" if len(candidates) == 1 else "Services {} have"
    raise _missing(
        f"LoadBalancer {subject.format(names)} no IPv4 ingress IP yet"
        " (status.loadBalancer.ingress has none)"
    )


def service_ports(service: Service) -> tuple[ServicePort, ...]:
    """The Service's `spec.ports` as (lower-case protocol, port), sorted and unique."""
    owner = f"Service {service.namespace}/{service.name}"
    if not service.ports:
        raise PolicyError(Reason.VALIDATION_FAILED, f"{owner}: spec.ports is empty")
    ports = {
        _service_port(entry, f"spec.ports[{i}]", owner) for i, entry in enumerate(service.ports)
    }
    return tuple(sorted(ports, key=lambda p: (p.protocol, p.port)))


def _service_port(entry: Any, path: str, owner: str) -> ServicePort:
    if not isinstance(entry, Mapping):
        raise field_error(owner, path, entry, "is not a mapping with a port")
    protocol = entry.get("protocol")
    protocol = "TCP" if protocol is None else protocol
    if protocol not in PROTOCOLS:
        raise field_error(owner, f"{path}.protocol", protocol, "is not TCP, UDP or SCTP")
    port = entry.get("port")
    if type(port) is not int or not 1 <= port <= 65535:
        raise field_error(owner, f"{path}.port", port, "is not a port number from 1 to 65535")
    return ServicePort(protocol=protocol.lower(), port=port)


def _names(names: Iterable[str]) -> str:
    """Up to three names, then "and N more"."""
    listed = list(names)
    shown = ", ".join(listed[:LISTED_NAMES])
    rest = len(listed) - LISTED_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown


def _missing(message: str) -> PolicyError:
    return PolicyError(Reason.DISCOVERY_FAILED, message)
