"""Scoping a policy's sources as Cilium scopes them, for the gateway found by discovery.

Only `ingress` entries of rules whose endpointSelector selects the gateway's pods bring sources
(a nodeSelector rule selects nodes and never does); an entry's `toPorts` narrows which Service
ports it opens (by the Service port's target port, as Cilium matches the pod's port). Entries
that open different ports cannot share one address list, so they are refused. Sources in
private or shared address space are left out: they never arrive from the internet, and listing
them would make the NAT rule capture their own outbound traffic. A range that lies partly in that
space is refused, as neither leaving it out nor keeping it would do what its author meant.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sync_job.model import PolicyError, Reason, ServicePort
from sync_job.source.cilium import KIND, IngressRule, PolicySpec, PortRule, source_text
from sync_job.source.discovery import Discovery, PodIndex, service_targets
from sync_job.source.selectors import NAMESPACE_KEY, matches
from sync_job.source.snapshot import Pod, Service

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1918, RFC 6598 shared space, RFC 6890 IETF protocol assignments, RFC 2544 benchmarking,
# and IPv6 unique local addresses (RFC 4193), the IPv6 counterpart of RFC 1918.
PRIVATE_SPACE: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "fc00::/7",
    )
)


@dataclass(frozen=True, slots=True)
class Scoped:
    """What the router opens for a policy: sources, ports, and what was left out and why."""

    sources: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    left_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def is_private(address: str) -> bool:
    """Whether a source (an address or a prefix) lies wholly inside private or shared space."""
    return _in_private(ipaddress.ip_network(address))


def _within(network: Network, block: Network) -> bool:
    return network.version == block.version and network.subnet_of(block)  # type: ignore[arg-type]


def _in_private(network: Network) -> bool:
    return any(_within(network, block) for block in PRIVATE_SPACE)


def _outermost(networks: set[Network]) -> list[Network]:
    """Sorted (IPv4 first), without the prefixes another one contains (the rules' sources are
    pooled, never merged: without --allow-source-ranges every entry stays a host)."""
    ordered = sorted(networks, key=lambda n: (n.version, n))
    return [n for n in ordered if not any(o != n and _within(n, o) for o in networks)]


def scope(policy: PolicySpec, found: Discovery, pods: PodIndex) -> Scoped:
    """The sources and ports the router must open for `policy` through `found.gateway`."""
    owner = f"{KIND} {policy.name}"
    rules = [
        rule
        for rule in policy.ingress
        if rule.selector is not None
        and any(matches(rule.selector, pods.labels(pod)) for pod in found.pods)
    ]
    targets = _target_ports(found.services, found.pods)
    opened: dict[tuple[ServicePort, ...], list[IngressRule]] = {}
    notes = []
    for rule in rules:
        allowed = tuple(
            p for p in found.gateway.ports if _allows(rule.ports, p, targets.get(p, (p.port, None)))
        )
        if allowed:
            opened.setdefault(allowed, []).append(rule)
        else:
            gateway = found.gateway
            notes.append(
                f"{rule.path} opens no port of the gateway (Service "
                f"{gateway.namespace}/{gateway.name}: {_ports_text(gateway.ports)})"
            )
    if len(opened) > 1:
        described = "; ".join(
            f"{', '.join(r.path for r in group)} open{'s' if len(group) == 1 else ''} "
            f"{_ports_text(ports)}"
            for ports, group in opened.items()
        )
        raise PolicyError(
            Reason.VALIDATION_FAILED,
            f"{owner}: its ingress rules open different ports of the gateway ({described}), "
            "which one address list cannot express: split them into one policy per set of ports",
        )
    ports, chosen = next(iter(opened.items()), (found.gateway.ports, []))
    everything = _outermost({ipaddress.ip_network(a) for r in chosen for a in r.sources})
    for network in everything:
        block = next(
            (b for b in PRIVATE_SPACE if b.version == network.version and network.overlaps(b)),
            None,
        )
        if block is not None and not _within(network, block):
            raise PolicyError(
                Reason.VALIDATION_FAILED,
                f"{owner}: source {network} straddles the private range {block}: private space "
                "never arrives from the internet, so list only the public part of the range",
            )
    sources = tuple(source_text(n) for n in everything if not _in_private(n))
    left_out = tuple(source_text(n) for n in everything if _in_private(n))
    if left_out:
        notes.append(
            f"left out {len(left_out)} private source(s) ({', '.join(left_out[:3])}"
            f"{' and more' if len(left_out) > 3 else ''}): private space never arrives from "
            "the internet"
        )
    return Scoped(sources, ports, left_out, tuple(notes))


def open_to_any_namespace(policy: PolicySpec) -> bool:
    """Whether a selector of the policy names no namespace, so pods of any namespace count."""
    return any(
        not any(r.key == NAMESPACE_KEY and r.operator == "In" for r in s.requirements)
        for s in policy.selectors
    )


def _ports_text(ports: Sequence[ServicePort]) -> str:
    return ", ".join(f"{p.protocol} {p.port}" for p in ports)


def _target_ports(
    services: Sequence[Service], pods: Sequence[Pod]
) -> dict[ServicePort, tuple[int | None, str | None]]:
    """Each gateway port's target: (number, name); the number of a named target is looked up
    in the selected pods' container ports (None when no pod lists it)."""
    named: dict[str, int] = {}
    for pod in pods:
        for name, number in pod.container_ports.items():
            named.setdefault(name, number)
    found: dict[ServicePort, tuple[int | None, str | None]] = {}
    for service in services:
        for port, target in service_targets(service).items():
            resolved = (named.get(target), target) if isinstance(target, str) else (target, None)
            found.setdefault(port, resolved)
    return found


def _allows(
    rules: Sequence[PortRule] | None, port: ServicePort, target: tuple[int | None, str | None]
) -> bool:
    if rules is None:
        return True
    number, name = target
    for rule in rules:
        if rule.protocol is not None and rule.protocol != port.protocol:
            continue
        if rule.port is None:
            return True
        if isinstance(rule.port, str):
            if rule.port == name:
                return True
            continue
        if number is not None and rule.port <= number <= (rule.end_port or rule.port):
            return True
    return False
