"""Reading one CiliumClusterwideNetworkPolicy: its allowed single-address sources and its selectors.

Owns the policy-level contract: the rules are `spec` plus every `specs[]` entry; sources are the
IPv4 /32s of `fromCIDR` and `fromCIDRSet[].cidr` in the `ingress` rules, minus whatever any
`ingressDeny` rule covers (deny wins, as in Cilium). Anything the router could not mirror exactly
raises ValidationFailed naming the field at fault. Pod selection lives in
`sync_job.source.selectors`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync_job.model import PolicyError, Reason
from sync_job.source.selectors import EndpointSelector, field_error, parse_selector
from sync_job.source.snapshot import is_ipv4

KIND = "CiliumClusterwideNetworkPolicy"
DEFAULT_RESERVED: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)
WORLD_ENTITIES = frozenset({"world", "world-ipv4", "all"})
EVERYWHERE = ipaddress.IPv4Network("0.0.0.0/0")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class PortRule:
    """One `toPorts[].ports[]` entry. `port` is a number, a named port, or None (every port);
    `end_port` closes a range; `protocol` is lower-case tcp/udp/sctp, None for ANY, or another
    protocol (`icmp`, `vrrp`, ...) that no Service port has."""

    port: int | str | None
    end_port: int | None = None
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class IngressRule:
    """One `ingress[]` entry that names sources, as Cilium scopes it: to the pods its rule's
    endpointSelector selects (None: a nodeSelector rule, which selects nodes, never pods) and to
    its `toPorts` (None: every port)."""

    path: str
    selector: EndpointSelector | None
    sources: tuple[str, ...]
    ports: tuple[PortRule, ...] | None = None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """What the sync needs from one CCNP. `selectors` only come from endpointSelector rules;
    `sources` pools every rule's, `ingress` keeps them apart for scoping (sync_job.source.scope)."""

    name: str
    uid: str
    generation: int
    sources: tuple[str, ...]
    selectors: tuple[EndpointSelector, ...]
    ingress: tuple[IngressRule, ...] = ()


@dataclass(frozen=True, slots=True)
class _Deny:
    """One ingressDeny peer: a network minus its `except` networks."""

    network: Network
    excepted: tuple[Network, ...] = ()

    def covers(self, address: ipaddress.IPv4Address) -> bool:
        return address in self.network and not any(address in e for e in self.excepted)


def parse_policy(
    raw: Mapping[str, Any], reserved: Sequence[ipaddress.IPv4Network] = DEFAULT_RESERVED
) -> PolicySpec:
    """Validate a raw CCNP and extract its sources and pod selectors; raises PolicyError."""
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    name = name if isinstance(name, str) and name else "<unnamed>"
    owner = f"{KIND} {name}"
    found: list[tuple[str, EndpointSelector | None, set[ipaddress.IPv4Address], Any]] = []
    denies: list[_Deny] = []
    selectors: list[EndpointSelector] = []
    for path, rule in _rules(raw, owner):
        selector = _rule_selector(rule, path, owner)
        if selector is not None and selector not in selectors:
            selectors.append(selector)
        for entry_path, hosts, ports in _allowed(
            rule.get("ingress"), f"{path}.ingress", owner, reserved
        ):
            found.append((entry_path, selector, hosts, ports))
        denies.extend(_denied(rule.get("ingressDeny"), f"{path}.ingressDeny", owner))

    def kept(hosts: set[ipaddress.IPv4Address]) -> list[ipaddress.IPv4Address]:
        return sorted(a for a in hosts if not any(d.covers(a) for d in denies))

    ingress = tuple(
        IngressRule(path, selector, tuple(str(a) for a in kept(hosts)), ports)
        for path, selector, hosts, ports in found
    )
    sources = kept(set().union(*(hosts for _, _, hosts, _ in found)))
    uid, generation = metadata.get("uid"), metadata.get("generation")
    return PolicySpec(
        name=name,
        uid=uid if isinstance(uid, str) else "",
        generation=generation if type(generation) is int else 0,
        sources=tuple(str(a) for a in sources),
        selectors=tuple(selectors),
        ingress=ingress,
    )


def _rules(raw: Any, owner: str) -> list[tuple[str, Mapping[str, Any]]]:
    """`spec` then every `specs[]` entry, each with its field path."""
    if not isinstance(raw, Mapping):
        raise PolicyError(Reason.VALIDATION_FAILED, f"{owner}: is not a mapping")
    spec, specs = raw.get("spec"), raw.get("specs")
    found: list[tuple[str, Any]] = [] if spec is None else [("spec", spec)]
    if specs is not None:
        if not isinstance(specs, list):
            raise field_error(owner, "specs", specs, "is not a list of rules")
        found.extend((f"specs[{i}]", rule) for i, rule in enumerate(specs))
    if not found:
        raise PolicyError(Reason.VALIDATION_FAILED, f"{owner}: has neither spec nor specs")
    for path, rule in found:
        if not isinstance(rule, Mapping):
            raise field_error(owner, path, rule, "is not a rule (a mapping)")
    return found


def _rule_selector(rule: Mapping[str, Any], path: str, owner: str) -> EndpointSelector | None:
    """The rule's endpointSelector; None for a nodeSelector rule (it selects nodes, not pods)."""
    endpoint, node = rule.get("endpointSelector"), rule.get("nodeSelector")
    if endpoint is not None and node is not None:
        raise PolicyError(
            Reason.VALIDATION_FAILED, f"{owner}: {path} has both endpointSelector and nodeSelector"
        )
    if node is not None:
        parse_selector(node, f"{path}.nodeSelector", owner)
        return None
    if endpoint is None:
        raise PolicyError(
            Reason.VALIDATION_FAILED,
            f"{owner}: {path} has neither endpointSelector nor nodeSelector",
        )
    return parse_selector(endpoint, f"{path}.endpointSelector", owner)


def _list(value: Any, path: str, owner: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise field_error(owner, path, value, "is not a list")
    return value


def _peer_rules(value: Any, path: str, owner: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The entries of an `ingress`/`ingressDeny` list, each checked to be a mapping."""
    rules = []
    for i, rule in enumerate(_list(value, path, owner)):
        if not isinstance(rule, Mapping):
            raise field_error(owner, f"{path}[{i}]", rule, "is not a rule (a mapping)")
        rules.append((f"{path}[{i}]", rule))
    return rules


def _cidr_sets(
    rule: Mapping[str, Any], path: str, owner: str
) -> list[tuple[str, Mapping[str, Any]]]:
    """`fromCIDRSet` entries, rejecting `cidrGroupRef` (its addresses live in another object)."""
    entries = []
    for i, entry in enumerate(_list(rule.get("fromCIDRSet"), f"{path}.fromCIDRSet", owner)):
        entry_path = f"{path}.fromCIDRSet[{i}]"
        if not isinstance(entry, Mapping):
            raise field_error(owner, entry_path, entry, "is not a mapping with a cidr")
        if entry.get("cidrGroupRef") is not None:
            raise field_error(
                owner,
                f"{entry_path}.cidrGroupRef",
                entry["cidrGroupRef"],
                "is not supported: list the addresses in fromCIDR",
            )
        if entry.get("cidr") is None:
            raise field_error(owner, entry_path, entry, "has neither cidr nor cidrGroupRef")
        entries.append((entry_path, entry))
    return entries


def _allowed(
    ingress: Any, path: str, owner: str, reserved: Sequence[ipaddress.IPv4Network]
) -> list[tuple[str, set[ipaddress.IPv4Address], tuple[PortRule, ...] | None]]:
    """Each `ingress` entry with its /32 sources and its ports; anything else in fromCIDR or
    fromCIDRSet is an error. Entries without CIDR sources bring nothing to the router."""
    found = []
    for rule_path, rule in _peer_rules(ingress, path, owner):
        hosts = set()
        cidrs = _list(rule.get("fromCIDR"), f"{rule_path}.fromCIDR", owner)
        for i, value in enumerate(cidrs):
            hosts.add(_single_host(value, f"{rule_path}.fromCIDR[{i}]", owner, reserved))
        for entry_path, entry in _cidr_sets(rule, rule_path, owner):
            hosts.add(_single_host(entry["cidr"], f"{entry_path}.cidr", owner, reserved))
            if entry.get("except") not in (None, []):
                raise field_error(
                    owner,
                    f"{entry_path}.except",
                    entry["except"],
                    "is not supported in an allow rule: list the allowed addresses in fromCIDR",
                )
        if hosts:
            ports = _to_ports(rule.get("toPorts"), f"{rule_path}.toPorts", owner)
            found.append((rule_path, hosts, ports))
    return found


def _to_ports(value: Any, path: str, owner: str) -> tuple[PortRule, ...] | None:
    """The ports an ingress entry allows; None when it has no `toPorts` (every port)."""
    if value is None or value == []:
        return None
    ports: list[PortRule] = []
    for i, entry in enumerate(_list(value, path, owner)):
        if not isinstance(entry, Mapping):
            raise field_error(owner, f"{path}[{i}]", entry, "is not a mapping with ports")
        listed = _list(entry.get("ports"), f"{path}[{i}].ports", owner)
        if not listed:  # a toPorts entry with only L7 rules or icmps limits no port
            return None
        ports.extend(_port_rule(p, f"{path}[{i}].ports[{j}]", owner) for j, p in enumerate(listed))
    return tuple(ports)


def _port_rule(entry: Any, path: str, owner: str) -> PortRule:
    if not isinstance(entry, Mapping):
        raise field_error(owner, path, entry, "is not a mapping with a port")
    protocol = entry.get("protocol")
    if protocol is not None and not isinstance(protocol, str):
        raise field_error(owner, f"{path}.protocol", protocol, "is not a protocol name")
    proto = None if protocol in (None, "ANY") else str(protocol).lower()
    raw_port = entry.get("port")
    port: int | str | None
    if raw_port is None or str(raw_port) == "0":
        port = None
    elif isinstance(raw_port, int) or (isinstance(raw_port, str) and raw_port.isdigit()):
        port = int(raw_port)
        if not 1 <= port <= 65535:
            raise field_error(owner, f"{path}.port", raw_port, "is not a port from 1 to 65535")
    elif isinstance(raw_port, str) and raw_port and "${" not in raw_port:
        port = raw_port  # a named port, resolved against the Service's target ports
    else:
        raise field_error(owner, f"{path}.port", raw_port, "is not a port number or name")
    raw_end = entry.get("endPort")
    end: int | None = None
    if raw_end not in (None, 0, "0"):
        if not (isinstance(raw_end, int) or (isinstance(raw_end, str) and raw_end.isdigit())):
            raise field_error(owner, f"{path}.endPort", raw_end, "is not a port number")
        end = int(raw_end)
    return PortRule(port, end, proto)


def _denied(ingress_deny: Any, path: str, owner: str) -> list[_Deny]:
    """Every network the `ingressDeny` rules cover (world entities cover everything)."""
    found = []
    for rule_path, rule in _peer_rules(ingress_deny, path, owner):
        cidrs = _list(rule.get("fromCIDR"), f"{rule_path}.fromCIDR", owner)
        for i, value in enumerate(cidrs):
            found.append(_Deny(_network(value, f"{rule_path}.fromCIDR[{i}]", owner)))
        for entry_path, entry in _cidr_sets(rule, rule_path, owner):
            network = _network(entry["cidr"], f"{entry_path}.cidr", owner)
            excepts = _list(entry.get("except"), f"{entry_path}.except", owner)
            excepted = tuple(
                _network(e, f"{entry_path}.except[{i}]", owner) for i, e in enumerate(excepts)
            )
            found.append(_Deny(network, excepted))
        entities = _list(rule.get("fromEntities"), f"{rule_path}.fromEntities", owner)
        for i, entity in enumerate(entities):
            if not isinstance(entity, str):
                raise field_error(
                    owner, f"{rule_path}.fromEntities[{i}]", entity, "is not a string"
                )
            if entity in WORLD_ENTITIES:
                found.append(_Deny(EVERYWHERE))
    return found


def _network(value: Any, path: str, owner: str) -> Network:
    """A CIDR in Cilium's notation: address, `/`, prefix length (host bits are masked off)."""
    if not isinstance(value, str):
        raise field_error(owner, path, value, "is not a string")
    if "${" in value or "{{" in value:
        raise field_error(owner, path, value, "is an unrendered template value, not a CIDR")
    address, slash, length = value.partition("/")
    if not slash and is_ipv4(address):
        raise field_error(owner, path, value, f'has no prefix length (write "{value}/32")')
    if not (length.isascii() and length.isdigit() and length == str(int(length))):
        raise field_error(owner, path, value, "is not a CIDR (address/prefix-length)")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise field_error(owner, path, value, "is not a CIDR (address/prefix-length)") from None


def _plain_host(value: Any) -> ipaddress.IPv4Address | None:
    """The address of a plain `a.b.c.d/32`, which `_network` would accept as it is; None for
    anything else, which then goes through every check (this only saves parsing it twice)."""
    if isinstance(value, str) and value.endswith("/32"):
        try:
            return ipaddress.IPv4Address(value[:-3])
        except ValueError:
            return None
    return None


def _single_host(
    value: Any, path: str, owner: str, reserved: Sequence[ipaddress.IPv4Network]
) -> ipaddress.IPv4Address:
    address = _plain_host(value)
    if address is None:
        network = _network(value, path, owner)
        if network.version == 6:
            raise field_error(
                owner, path, value, "is IPv6: only single IPv4 addresses (/32) are supported"
            )
        if network.prefixlen != 32:
            raise field_error(owner, path, value, "is not a single IPv4 address (/32)")
        address = ipaddress.IPv4Address(network.network_address)
    for block in reserved:
        if address in block:
            raise field_error(owner, path, value, f"is in the reserved range {block}")
    return address
