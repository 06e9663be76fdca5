"""Finding the gateway of a policy: its selected running pods, the LoadBalancer Services in front
of them, the one ingress address they agree on and their validated ports.

Owns the per-run indexes (`PodIndex`, `ServiceIndex`), built once from the snapshot so that each
policy is resolved without scanning every pod and Service, and the DiscoveryFailed messages.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sync_job.model import Family, Gateway, PolicyError, Reason, ServicePort
from sync_job.source.cilium import KIND, PolicySpec
from sync_job.source.selectors import EndpointSelector, endpoint_labels, field_error, matches
from sync_job.source.snapshot import GATEWAY_ANNOTATION, Pod, Service

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A container port name (IANA_SVC_NAME): lower-case letters, digits and '-', at most 15.
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")
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
        # A Pending pod may never start, and anyone who may create pods can create one: only
        # running pods take part.
        live = [pod for pod in pods if pod.phase == "Running"]
        self._pods = sorted(live, key=lambda pod: (pod.namespace, pod.name))
        self._labels = [endpoint_labels(p, namespace_labels, cluster_name) for p in self._pods]
        self._by_name = {(p.namespace, p.name): i for i, p in enumerate(self._pods)}
        self._by_label: dict[tuple[str, str], list[int]] = {}
        for position, labels in enumerate(self._labels):
            for pair in labels.items():
                self._by_label.setdefault(pair, []).append(position)

    def labels(self, pod: Pod) -> Mapping[str, str]:
        """The endpoint labels of one of the indexed pods."""
        return self._labels[self._by_name[(pod.namespace, pod.name)]]

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


@dataclass(frozen=True, slots=True)
class Discovery:
    """The gateway of a policy, the Services that share its address and the pods behind them.

    The gateway has the address of each family it could agree on; why a family has none is in
    `problems`, raised only for a family the policy turns out to need (`address`)."""

    gateway: Gateway
    services: tuple[Service, ...]
    pods: tuple[Pod, ...]
    problems: Mapping[Family, PolicyError] = field(default_factory=dict)

    def require(self, needed: Iterable[Family]) -> Gateway:
        """The gateway with the addresses of `needed` only; raises why one of them is missing."""
        wanted = set(needed)
        for family in Family:
            if family in wanted and family in self.problems:
                raise self.problems[family]
        return replace(
            self.gateway,
            ip=self.gateway.ip if Family.IPV4 in wanted else None,
            ip6=self.gateway.ip6 if Family.IPV6 in wanted else None,
        )


def find_gateway(
    policy: PolicySpec,
    pods: PodIndex,
    services: ServiceIndex,
    *,
    gateway_ref: tuple[str, str] | None = None,
    gateway_ranges: Sequence[Network] = (),
) -> Gateway:
    """The IPv4 gateway of a policy (raises when it has none)."""
    return discover(
        policy, pods, services, gateway_ref=gateway_ref, gateway_ranges=gateway_ranges
    ).require([Family.IPV4])


def discover(
    policy: PolicySpec,
    pods: PodIndex,
    services: ServiceIndex,
    *,
    gateway_ref: tuple[str, str] | None = None,
    gateway_ranges: Sequence[Network] = (),
    families: Iterable[Family] = (Family.IPV4,),
) -> Discovery:
    """The one LoadBalancer address of each of `families` in front of the policy's running
    pods; raises DiscoveryFailed when something is missing or ambiguous, ValidationFailed for a
    bad port. A family without one address (none, several, or one that can never be a gateway)
    is in `problems`, as the policy may not need it.

    Every LoadBalancer Service with an ingress address in front of a selected pod must agree on
    that address (Services sharing it have their ports merged), unless the policy names its
    gateway Service (`gateway_ref`), which then must front a selected pod.
    """
    enabled = [family for family in Family if family in set(families)]
    if not policy.selectors:
        raise _missing(f"{KIND} {policy.name} has no rule with an endpointSelector")
    selected = pods.select(policy.selectors)
    if not selected:
        fields = _names(dict.fromkeys(s.path for s in policy.selectors))
        raise _missing(f"no running pod matches {fields} of {KIND} {policy.name}")
    found = {(s.namespace, s.name): s for pod in selected for s in services.selecting(pod)}
    if gateway_ref is not None:
        if gateway_ref not in found:
            raise _missing(
                f"the gateway Service {'/'.join(gateway_ref)} named by {KIND} {policy.name} "
                "is not a LoadBalancer Service in front of its running pods"
            )
        found = {gateway_ref: found[gateway_ref]}
    if not found:
        names = _names(f"{p.namespace}/{p.name}" for p in selected)
        many = len(selected) != 1
        what = f"the {len(selected)} matching pods" if many else "the matching pod"
        raise _missing(f"no LoadBalancer Service selects {what} ({names})")
    candidates = [found[key] for key in sorted(found)]
    ready = [s for s in candidates if any(_addresses(s, family) for family in enabled)]
    if not ready:
        names = _names(f"{s.namespace}/{s.name}" for s in candidates)
        subject = "Service {} has" if len(candidates) == 1 else "Services {} have"
        kinds = " or ".join(_FAMILY_NAMES[family] for family in enabled)
        raise _missing(
            f"LoadBalancer {subject.format(names)} no {kinds} ingress IP yet"
            " (status.loadBalancer.ingress has none)"
        )
    chosen: dict[Family, str] = {}
    problems: dict[Family, PolicyError] = {}
    for family in enabled:
        try:
            chosen[family] = _gateway_address(policy, ready, family, gateway_ranges)
        except PolicyError as error:
            problems[family] = error
    first = ready[0]
    ports = sorted(
        {port for service in ready for port in service_ports(service)},
        key=lambda p: (p.protocol, p.port),
    )
    fronted = tuple(
        pod for pod in selected if any(service in ready for service in services.selecting(pod))
    )
    gateway = Gateway(
        first.namespace,
        first.name,
        chosen.get(Family.IPV4),
        tuple(ports),
        chosen.get(Family.IPV6),
    )
    return Discovery(gateway, tuple(ready), fronted, problems)


_FAMILY_NAMES = {Family.IPV4: "IPv4", Family.IPV6: "IPv6"}


def _addresses(service: Service, family: Family) -> tuple[str, ...]:
    return service.ingress_ips if family is Family.IPV4 else service.ingress_ips6


def _gateway_address(
    policy: PolicySpec, ready: Sequence[Service], family: Family, ranges: Sequence[Network]
) -> str:
    """The one `family` address the ready Services agree on, checked; raises why there is none."""
    having = [service for service in ready if _addresses(service, family)]
    name = _FAMILY_NAMES[family]
    if not having:
        names = _names(f"{s.namespace}/{s.name}" for s in ready)
        subject = "Service {} has" if len(ready) == 1 else "Services {} have"
        raise _missing(
            f"{KIND} {policy.name} has {name} sources, but its LoadBalancer "
            f"{subject.format(names)} no {name} ingress IP (status.loadBalancer.ingress has "
            f"none): give the Service an {name} address (spec.ipFamilies), or remove the "
            f"{name} sources"
        )
    addresses = {_addresses(service, family)[0] for service in having}
    if len(addresses) > 1:
        listed = _names(f"{s.namespace}/{s.name} ({_addresses(s, family)[0]})" for s in having)
        raise _missing(
            f"the LoadBalancer Services in front of the pods of {KIND} {policy.name} disagree on "
            f"the {name} gateway address: {listed}; name the one to use with the annotation "
            f"{GATEWAY_ANNOTATION}: <namespace>/<name>, or narrow the endpointSelector"
        )
    address = _addresses(having[0], family)[0]
    _check_address(having[0], address, ranges)
    return address


def _check_address(service: Service, address: str, ranges: Sequence[Network]) -> None:
    """Refuse addresses that can never be a LoadBalancer address, and any outside `ranges`."""
    owner = f"Service {service.namespace}/{service.name}"
    ip = ipaddress.ip_address(address)
    problems = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_link_local, "a link-local address"),
    )
    for bad, what in problems:
        if bad:
            raise field_error(
                owner, "status.loadBalancer.ingress[0].ip", address, f"is {what}, never a gateway"
            )
    if ranges and not any(ip in network for network in ranges):
        allowed = ", ".join(str(network) for network in ranges)
        raise field_error(
            owner,
            "status.loadBalancer.ingress[0].ip",
            address,
            f"is outside the gateway ranges (--gateway-cidr {allowed})",
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


def service_targets(service: Service) -> dict[ServicePort, int | str]:
    """Each port's `targetPort`: a number (the port itself when unset) or a container port's
    name; validated like the ports, naming the field at fault."""
    owner = f"Service {service.namespace}/{service.name}"
    targets: dict[ServicePort, int | str] = {}
    for i, entry in enumerate(service.ports):
        port = _service_port(entry, f"spec.ports[{i}]", owner)
        target = entry.get("targetPort")
        if target is None:
            target = port.port
        elif isinstance(target, str) and target.isdigit():
            target = int(target)
        elif isinstance(target, str) and _PORT_NAME.match(target):
            pass
        elif type(target) is not int or not 1 <= target <= 65535:
            raise field_error(
                owner, f"spec.ports[{i}].targetPort", target, "is not a port number or name"
            )
        targets.setdefault(port, target)
    return targets


def _names(names: Iterable[str]) -> str:
    """Up to three names, then "and N more"."""
    listed = list(names)
    shown = ", ".join(listed[:LISTED_NAMES])
    rest = len(listed) - LISTED_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown


def _missing(message: str) -> PolicyError:
    return PolicyError(Reason.DISCOVERY_FAILED, message)
