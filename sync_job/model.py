"""Domain types shared by the pure parts: policy outcomes and the objects the router should hold.

Nothing here does I/O. Router objects are kept as the string-valued field mappings RouterOS
itself speaks, so the planner can compare them with what it reads without translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """The `reason` of a RouterPolicy's Ready condition."""

    SYNCED = "Synced"
    VALIDATION_FAILED = "ValidationFailed"
    DISCOVERY_FAILED = "DiscoveryFailed"
    SYNC_FAILED = "SyncFailed"


class PolicyError(Exception):
    """One policy cannot be synced; the message names the object and the field at fault."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Table(StrEnum):
    """A RouterOS menu the tool reads and writes, by its REST path."""

    FILTER = "ip/firewall/filter"
    NAT = "ip/firewall/nat"
    ADDRESS_LIST = "ip/firewall/address-list"

    @property
    def label(self) -> str:
        return self.value.rsplit("/", 1)[1]


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of the gateway Service, protocol in RouterOS spelling (tcp, udp, sctp)."""

    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class Gateway:
    """The LoadBalancer Service in front of a policy's pods."""

    namespace: str
    name: str
    ip: str
    ports: tuple[ServicePort, ...]


@dataclass(frozen=True, slots=True)
class PolicyTarget:
    """Everything the router must hold for one policy that validated and was discovered."""

    name: str
    sources: tuple[str, ...]
    gateway: Gateway


@dataclass(frozen=True, slots=True)
class RouterObject:
    """One row the router should hold: its table and its string fields, as RouterOS speaks them."""

    table: Table
    fields: Mapping[str, str]
