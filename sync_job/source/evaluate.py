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
from typing import Any

from sync_job.model import PolicyError, PolicyOutcome, PolicyTarget, Reason
from sync_job.source.cilium import DEFAULT_RESERVED, parse_policy
from sync_job.source.discovery import PodIndex, ServiceIndex, find_gateway
from sync_job.source.snapshot import ClusterSnapshot

log = logging.getLogger(__name__)


def _policy_name(raw: Mapping[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def _synced_message(target: PolicyTarget) -> str:
    by_protocol: dict[str, list[str]] = {}
    for port in target.gateway.ports:
        by_protocol.setdefault(port.protocol, []).append(str(port.port))
    ports = "; ".join(f"{proto} {','.join(ports)}" for proto, ports in sorted(by_protocol.items()))
    gateway = target.gateway
    return (
        f"router in sync: {len(target.sources)} source(s) -> {gateway.ip} "
        f"(Service {gateway.namespace}/{gateway.name}) on {ports}"
    )


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
    reserved: Sequence[ipaddress.IPv4Network] = DEFAULT_RESERVED,
    cluster_name: str = "default",
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """Validate and discover every annotated policy; one policy's failure never stops another."""
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
            spec = parse_policy(raw, tuple(reserved))
            gateway = find_gateway(spec, pods, services)
        except PolicyError as error:
            log.warning("policy %s: %s: %s", name, error.reason.value, error.message)
            outcomes.append(PolicyOutcome(name, error.reason, error.message, generation))
            continue
        target = PolicyTarget(name, spec.sources, gateway)
        targets.append(target)
        outcomes.append(
            PolicyOutcome(name, Reason.SYNCED, _synced_message(target), generation, gateway.ip)
        )
    return outcomes, targets
