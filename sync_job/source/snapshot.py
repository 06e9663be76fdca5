"""Typed snapshot of the cluster objects one pass reads, parsed from raw API dicts at the boundary.

Policies stay raw mappings: their validation must name the exact field at fault, so they are
parsed by `sync_job.source.cilium`, not here. Pods and Services only carry the fields the pass uses.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"
# The earlier Go controller's later releases used this group for the same annotations.
LATER_GROUP = "router-policy-sync.homelab-images.benfiola.com"
# Either key selects a policy; the contract's key is looked at first.
ANNOTATIONS = (ANNOTATION, f"{LATER_GROUP}/sync-with-router")
GATEWAY_ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/gateway"
GATEWAY_ANNOTATIONS = (GATEWAY_ANNOTATION, f"{LATER_GROUP}/gateway")


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    service_account: str = ""
    phase: str = "Running"
    # named container ports, read only when full pods are (a Service may target them by name)
    container_ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str
    selector: Mapping[str, str]
    ports: Sequence[Any]  # raw spec.ports: validated (bad fields named) by source.discovery
    ingress_ips: tuple[str, ...] = ()  # IPv4, in status order
    ingress_ips6: tuple[str, ...] = ()  # IPv6, in status order, RFC 5952 text


@dataclass(frozen=True, slots=True)
class CidrGroup:
    """One CiliumCIDRGroup: its labels (for `cidrGroupSelector`) and its raw
    `spec.externalCIDRs`, validated where a policy uses them (sync_job.source.cilium)."""

    name: str
    labels: Mapping[str, str]
    cidrs: Any


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """What one pass knows of the cluster. `router_policies` is None when read from a file;
    `cidr_groups` is None when the CiliumCIDRGroup CRD is not installed."""

    policies: Sequence[Mapping[str, Any]]
    pods: Sequence[Pod]
    services: Sequence[Service]
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    router_policies: Mapping[str, Mapping[str, Any]] | None = None
    cidr_groups: Mapping[str, CidrGroup] | None = field(default_factory=dict)


def cidr_group_from_raw(raw: Mapping[str, Any]) -> CidrGroup:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") if isinstance(raw.get("spec"), Mapping) else {}
    return CidrGroup(
        name=str(meta.get("name") or ""),
        labels=_str_map(meta.get("labels")),
        cidrs=spec.get("externalCIDRs") if spec else None,
    )


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def ipv6_text(value: Any) -> str | None:
    """A plain IPv6 address in RFC 5952 form (lower case, compressed), else None."""
    try:
        if not isinstance(value, str) or "%" in value:  # a zone index is no LB address
            return None
        return str(ipaddress.IPv6Address(value))
    except ValueError:
        return None


def is_ipv4(value: Any) -> bool:
    """Whether `value` is written as a plain IPv4 address."""
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def pod_from_raw(raw: Mapping[str, Any]) -> Pod:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    return Pod(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        labels=_str_map(meta.get("labels")),
        service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or ""),
        phase=str(status.get("phase") or ""),
        container_ports=_named_ports(spec.get("containers")),
    )


def _named_ports(containers: Any) -> dict[str, int]:
    named: dict[str, int] = {}
    for container in containers if isinstance(containers, list) else []:
        ports = container.get("ports") if isinstance(container, Mapping) else None
        for port in ports if isinstance(ports, list) else []:
            if isinstance(port, Mapping) and isinstance(port.get("name"), str):
                number = port.get("containerPort")
                if type(number) is int:
                    named.setdefault(port["name"], number)
    return named


def service_from_raw(raw: Mapping[str, Any]) -> Service:
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    ingress = ((raw.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    listed = [entry.get("ip") for entry in ingress if isinstance(entry, Mapping)]
    ips = tuple(str(ip) for ip in listed if is_ipv4(ip))
    ips6 = tuple(text for ip in listed if (text := ipv6_text(ip)) is not None)
    ports = spec.get("ports")
    return Service(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        type=str(spec.get("type") or "ClusterIP"),
        selector=_str_map(spec.get("selector")),
        ports=list(ports) if isinstance(ports, list) else [],
        ingress_ips=ips,
        ingress_ips6=ips6,
    )


# Values that clearly mean "no": a user who writes them must not get router rules.
_NO = frozenset({"false", "no", "0"})


def is_annotated(policy: Mapping[str, Any]) -> bool:
    """Whether the policy asks to be synced: one of `ANNOTATIONS` is present and does not say no
    (`false`, `no`, `0`, any case, logged at warning). Empty and any other value say yes. The
    first key present decides; which one it was is logged at debug."""
    meta = policy.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        return False
    key = next((k for k in ANNOTATIONS if k in annotations), None)
    if key is None:
        return False
    name = meta.get("name") if isinstance(meta, Mapping) else None
    value = annotations[key]
    if isinstance(value, str) and value.strip().lower() in _NO:
        log.warning(
            "policy %s: annotation %s=%r means no; the policy is not synced", name, key, value
        )
        return False
    log.debug("policy %s: selected by the annotation %s", name, key)
    return True
