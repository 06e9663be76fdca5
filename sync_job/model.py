"""The vocabulary every stage shares: why a policy is or is not synced, what it should open,
what one pass concluded about it, and the four kinds of change a pass can make.

Nothing here does I/O, and nothing here imports another module of the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Reason(StrEnum):
    """The `reason` of a RouterPolicy's Ready condition."""

    SYNCED = "Synced"
    VALIDATION_FAILED = "ValidationFailed"
    DISCOVERY_FAILED = "DiscoveryFailed"
    SYNC_FAILED = "SyncFailed"


class Family(StrEnum):
    """An IP family the job syncs (`--ip-families`); RouterOS keeps each in its own menus."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


def family_of(address: str) -> Family:
    """The family of an address or prefix written as text (IPv6 text always has a colon)."""
    return Family.IPV6 if ":" in address else Family.IPV4


class PolicyError(Exception):
    """One policy cannot be synced; the message names the object and the field at fault."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of the gateway Service, protocol in RouterOS spelling (tcp, udp, sctp)."""

    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class Gateway:
    """The LoadBalancer Service in front of a policy's pods: its first IPv4 and its first IPv6
    ingress address (each None when the Service has none or the policy needs none)."""

    namespace: str
    name: str
    ip: str | None
    ports: tuple[ServicePort, ...]
    ip6: str | None = None

    def address(self, family: Family) -> str | None:
        return self.ip if family is Family.IPV4 else self.ip6


@dataclass(frozen=True, slots=True)
class PolicyTarget:
    """Everything the router must hold for one policy that validated and was discovered.

    `sources` mixes both families (IPv6 ones contain a colon); `families` are the families
    the router holds objects of for it: those it has sources in (IPv4 alone when it has none).
    """

    name: str
    sources: tuple[str, ...]
    gateway: Gateway
    families: frozenset[Family] = frozenset({Family.IPV4})

    def sources_of(self, family: Family) -> tuple[str, ...]:
        return tuple(source for source in self.sources if family_of(source) is family)


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """What one pass concluded about one annotated policy."""

    name: str
    reason: Reason
    message: str
    generation: int = 0
    gateway_ip: str | None = None
    gateway_service: str | None = None  # namespace/name of the gateway Service
    gateway_ip6: str | None = None

    @property
    def ready(self) -> bool:
        return self.reason is Reason.SYNCED

    def blocked(self, problem: str) -> PolicyOutcome:
        """SyncFailed by a problem of the whole router; an earlier problem stays in the message."""
        message = problem
        if not self.ready:
            message += f" (besides: {self.reason.value}: {self.message})"
        return replace(self, reason=Reason.SYNC_FAILED, message=message)

    def noted(self, note: str | None) -> PolicyOutcome:
        """The same outcome with one more thing its message must say."""
        return self if not note else replace(self, message=f"{self.message}; {note}")

    def not_kept(self, messages: Sequence[str]) -> PolicyOutcome:
        """SyncFailed when the router did not keep what this run wrote for the policy."""
        if not messages or not self.ready:
            return self
        shown = "; ".join(messages[:3]) + (
            f"; and {len(messages) - 3} more" if len(messages) > 3 else ""
        )
        return replace(
            self,
            reason=Reason.SYNC_FAILED,
            message=f"the router did not keep what was written: {shown}",
        )

    def write_failed(self, failure: str | None) -> PolicyOutcome:
        """SyncFailed when one of its router writes failed; an earlier failure is kept as is."""
        if failure is None or not self.ready:
            return self
        return replace(self, reason=Reason.SYNC_FAILED, message=f"router write failed: {failure}")


class Action(StrEnum):
    """What a pass does to one object, on the router or in the cluster."""

    CREATE = "create"
    UPDATE = "update"
    MOVE = "move"
    DELETE = "delete"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "move": "↕", "delete": "-"}[self.value]


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp as Kubernetes writes `metav1.Time` (whole seconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
