"""Evaluation: every annotated policy validated and its gateway discovered, into outcomes.

Pure. One policy's failure never stops another: each becomes a PolicyOutcome whose message names
the object and the field at fault, and only the policies that passed become PolicyTargets.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sync_job.model import Family, PolicyError, PolicyOutcome, PolicyTarget, Reason, family_of
from sync_job.source.cilium import DEFAULT_RESERVED, DEFAULT_RESERVED6, KIND, Network, parse_policy
from sync_job.source.discovery import PodIndex, ServiceIndex, discover
from sync_job.source.scope import open_to_any_namespace, scope
from sync_job.source.snapshot import GATEWAY_ANNOTATION, GATEWAY_ANNOTATIONS, ClusterSnapshot

log = logging.getLogger(__name__)


def _policy_name(raw: Mapping[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def _synced_message(target: PolicyTarget, notes: Sequence[str] = ()) -> str:
    by_protocol: dict[str, list[str]] = {}
    for port in target.gateway.ports:
        by_protocol.setdefault(port.protocol, []).append(str(port.port))
    ports = "; ".join(f"{proto} {','.join(ports)}" for proto, ports in sorted(by_protocol.items()))
    gateway = target.gateway
    parts = [
        f"{len(target.sources_of(family))} {label}source(s) -> {gateway.address(family)}"
        for family, label in ((Family.IPV4, ""), (Family.IPV6, "IPv6 "))
        if family in target.families
    ]
    message = (
        f"router in sync: {', '.join(parts)} "
        f"(Service {gateway.namespace}/{gateway.name}) on {ports}"
    )
    return "; ".join((message, *notes))


def _needed(sources: Sequence[str], enabled: frozenset[Family]) -> frozenset[Family]:
    """The families the router holds objects of for a policy: those of its sources; with none,
    IPv4 when synced (today's empty list and rules), else IPv6."""
    found = frozenset(family_of(source) for source in sources)
    if found:
        return found
    return frozenset({Family.IPV4 if Family.IPV4 in enabled else Family.IPV6})


def _gateway_ref(raw: Mapping[str, Any], owner: str) -> tuple[str, str] | None:
    """The `<namespace>/<name>` a policy's author gave as its gateway Service, if any."""
    annotations = (raw.get("metadata") or {}).get("annotations") or {}
    for key in GATEWAY_ANNOTATIONS:
        value = annotations.get(key) if isinstance(annotations, Mapping) else None
        if value is None:
            continue
        namespace, slash, name = str(value).partition("/")
        if not (slash and _DNS1123_LABEL.match(namespace) and _DNS1123_SUBDOMAIN.match(name)):
            raise PolicyError(
                Reason.VALIDATION_FAILED,
                f"{owner}: metadata.annotations[{key}] {str(value)!r} is not "
                "<namespace>/<name> of a Service",
            )
        return namespace, name
    return None


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def _check_name(raw_name: Any, uses: int) -> None:
    """Names become router list names and comments, so only names Kubernetes accepts pass."""
    name = str(raw_name or "")
    owner = f"CiliumClusterwideNetworkPolicy {name!r}"
    if not name:
        raise PolicyError(
            Reason.VALIDATION_FAILED, "CiliumClusterwideNetworkPolicy: metadata.name is missing"
        )
    if not isinstance(raw_name, str):
        raise PolicyError(Reason.VALIDATION_FAILED, f"{owner}: metadata.name is not a string")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise PolicyError(
            Reason.VALIDATION_FAILED,
            f"{owner}: metadata.name is not a DNS-1123 subdomain (lower-case letters, digits, "
            "'-' and '.', at most 253 characters)",
        )
    if uses > 1:
        raise PolicyError(
            Reason.VALIDATION_FAILED, f"{owner}: metadata.name is used by {uses} policies"
        )


def evaluate(
    snapshot: ClusterSnapshot,
    *,
    reserved: Sequence[Network] = DEFAULT_RESERVED + DEFAULT_RESERVED6,
    cluster_name: str = "default",
    gateway_ranges: Sequence[Network] = (),
    allow_source_ranges: bool = False,
    families: frozenset[Family] = frozenset({Family.IPV4}),
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """Validate and discover every annotated policy; one policy's failure never stops another.
    `allow_source_ranges` (`--allow-source-ranges`) lets a source be a prefix; `families`
    (`--ip-families`) are the IP families synced."""
    pods = PodIndex(snapshot.pods, snapshot.namespace_labels, cluster_name)
    services = ServiceIndex(snapshot.services)
    outcomes: list[PolicyOutcome] = []
    targets: list[PolicyTarget] = []
    names = Counter(_policy_name(raw) for raw in snapshot.policies)
    for raw in sorted(snapshot.policies, key=_policy_name):
        meta = raw.get("metadata") or {}
        name = _policy_name(raw)
        generation = meta.get("generation")
        generation = generation if isinstance(generation, int) else 0
        try:
            _check_name(meta.get("name"), names[name])
            spec = parse_policy(
                raw,
                tuple(reserved),
                groups=snapshot.cidr_groups,
                allow_ranges=allow_source_ranges,
                families=families,
            )
            gateway_ref = _gateway_ref(raw, f"{KIND} {name}")
            found = discover(
                spec,
                pods,
                services,
                gateway_ref=gateway_ref,
                gateway_ranges=gateway_ranges,
                families=families,
            )
            scoped = scope(spec, found, pods)
            needed = _needed(scoped.sources, families)
            gateway = replace(found.require(needed), ports=scoped.ports)
        except PolicyError as error:
            log.warning("policy %s: %s: %s", name, error.reason.value, error.message)
            outcomes.append(PolicyOutcome(name, error.reason, error.message, generation))
            continue
        notes = list(scoped.notes)
        if spec.groups:
            notes.insert(0, f"sources from CiliumCIDRGroup {', '.join(spec.groups)}")
        if gateway_ref is None and open_to_any_namespace(spec):
            notes.append(
                "a selector names no namespace, so pods and Services of any namespace can take "
                f"part: name the gateway with the annotation {GATEWAY_ANNOTATION}"
            )
        target = PolicyTarget(name, scoped.sources, gateway, needed)
        targets.append(target)
        outcomes.append(
            PolicyOutcome(
                name,
                Reason.SYNCED,
                _synced_message(target, notes),
                generation,
                gateway.ip,
                f"{gateway.namespace}/{gateway.name}",
                gateway.ip6,
            )
        )
    return _without_overlaps(snapshot, outcomes, targets)


def _created(raw: Mapping[str, Any]) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), _policy_name(raw)


def _without_overlaps(
    snapshot: ClusterSnapshot, outcomes: list[PolicyOutcome], targets: list[PolicyTarget]
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """Two policies that would NAT one (source, protocol, port) to different gateways: the
    later-created one (creationTimestamp, then name) is refused, naming the earlier."""
    order = {_policy_name(raw): _created(raw) for raw in snapshot.policies}
    claims: dict[tuple[str, str, int], PolicyTarget] = {}
    ranged: dict[tuple[str, str, int], PolicyTarget] = {}  # the claims of prefixes, not hosts
    refused: dict[str, str] = {}
    for target in sorted(targets, key=lambda t: order.get(t.name, ("", t.name))):
        clash = _clash(target, claims, ranged)
        if clash is None:
            for claim in _claims(target):
                claims.setdefault(claim, target)
                if "/" in claim[0]:
                    ranged.setdefault(claim, target)
            continue
        (source, protocol, port), theirs, other = clash
        overlap = "" if theirs == source else f" overlaps {theirs}, which"
        refused[target.name] = (
            f"{KIND} {target.name}: source {source}{overlap} on {protocol} {port} is already "
            f"sent to {other.gateway.ip} by {KIND} {other.name}, which was created earlier; "
            "remove the source from one of them"
        )
    if not refused:
        return outcomes, targets
    for name, message in refused.items():
        log.warning("policy %s: %s: %s", name, Reason.VALIDATION_FAILED.value, message)
    kept = [
        replace(
            o,
            reason=Reason.VALIDATION_FAILED,
            message=refused[o.name],
            gateway_ip=None,
            gateway_service=None,
            gateway_ip6=None,
        )
        if o.name in refused
        else o
        for o in outcomes
    ]
    return kept, [target for target in targets if target.name not in refused]


def _clash(
    target: PolicyTarget,
    claims: Mapping[tuple[str, str, int], PolicyTarget],
    ranged: Mapping[tuple[str, str, int], PolicyTarget],
) -> tuple[tuple[str, str, int], str, PolicyTarget] | None:
    """The first claim of `target` that an earlier policy with another gateway holds, exactly
    or (with --allow-source-ranges) by an overlapping prefix: (claim, their source, theirs)."""
    for claim in _claims(target):
        other = claims.get(claim)
        if other is not None and other.gateway.ip != target.gateway.ip:
            return claim, claim[0], other
        source, protocol, port = claim
        # A range must be checked against every claim; a host only against the ranges.
        held = claims if "/" in source else ranged
        if not held:
            continue
        network = ipaddress.IPv4Network(source)
        for (their, their_protocol, their_port), owner in held.items():
            if (
                (their_protocol, their_port) == (protocol, port)
                and owner.gateway.ip != target.gateway.ip
                and network.overlaps(ipaddress.IPv4Network(their))
            ):
                return claim, their, owner
    return None


def _claims(target: PolicyTarget) -> list[tuple[str, str, int]]:
    """What a policy's NAT rules capture: (IPv4 source, protocol, port). IPv6 has no NAT: its
    rules name their destination, so two policies can never send one source to two places."""
    sources = target.sources_of(Family.IPV4)
    return [(s, p.protocol, p.port) for s in sources for p in target.gateway.ports]


def released_addresses(
    snapshot: ClusterSnapshot, outcomes: Sequence[PolicyOutcome]
) -> dict[str, dict[str, str]]:
    """For each failed policy, the LoadBalancer addresses that now belong to a Service other
    than the gateway its RouterPolicy status records: its NAT rules to them must go, or traffic
    of its sources would reach another tenant's Service. Without a recorded gateway, nothing."""
    recorded = {
        name: str(((rp.get("status") or {}).get("gatewayService")) or "")
        for name, rp in (snapshot.router_policies or {}).items()
    }
    holders: dict[str, set[str]] = {}
    for service in snapshot.services:
        if service.type == "LoadBalancer":
            for ip in (*service.ingress_ips, *service.ingress_ips6):
                holders.setdefault(ip, set()).add(f"{service.namespace}/{service.name}")
    released: dict[str, dict[str, str]] = {}
    for outcome in outcomes:
        gateway = recorded.get(outcome.name)
        if outcome.ready or not gateway:
            continue
        # An address the recorded gateway still holds (shared with another Service) stays.
        released[outcome.name] = {
            ip: f"{ip} now belongs to Service {min(owners)}, not to its gateway {gateway}"
            for ip, owners in holders.items()
            if gateway not in owners
        }
    return released
