"""Reading one CiliumClusterwideNetworkPolicy: its allowed sources and its selectors.

Owns the policy-level contract: the rules are `spec` plus every `specs[]` entry; sources are the
IPv4 /32s and IPv6 /128s (with `--allow-source-ranges`, prefixes up to /8 and /12 wide) of the
families `--ip-families` syncs, from `fromCIDR` and from
`fromCIDRSet[]` in the `ingress` rules: its `cidr`, or the `spec.externalCIDRs` of the
CiliumCIDRGroup its `cidrGroupRef` names or of every group its `cidrGroupSelector` matches, minus
its `except` prefixes, minus whatever any `ingressDeny` rule covers (deny wins, as in Cilium).
Anything the router could not mirror exactly raises ValidationFailed naming the field at fault.
Pod selection lives in `sync_job.source.selectors`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sync_job.model import Family, PolicyError, Reason
from sync_job.source.selectors import (
    OPERATORS,
    EndpointSelector,
    Requirement,
    field_error,
    parse_selector,
)
from sync_job.source.snapshot import CidrGroup, ipv6_text, is_ipv4

KIND = "CiliumClusterwideNetworkPolicy"
DEFAULT_RESERVED: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)
# Unspecified, loopback, link-local, multicast and IPv4-mapped: never a source on the internet
# (RFC 4291 section 2.4; IANA IPv6 Special-Purpose Address Registry). Documentation space
# (2001:db8::/32, RFC 3849) stays valid, as 192.0.2.0/24 does for IPv4.
DEFAULT_RESERVED6: tuple[ipaddress.IPv6Network, ...] = tuple(
    ipaddress.IPv6Network(cidr)
    for cidr in ("::/128", "::1/128", "fe80::/10", "ff00::/8", "::ffff:0:0/96")
)
# Cilium's world entities (docs.cilium.io, "Entities Based"): which families each covers.
WORLD_ENTITIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "world": ("0.0.0.0/0", "::/0"),
        "all": ("0.0.0.0/0", "::/0"),
        "world-ipv4": ("0.0.0.0/0",),
        "world-ipv6": ("::/0",),
    }
)

# The widest prefix --allow-source-ranges accepts: a /8 (IPv4) or a /12 (IPv6) is the largest
# block IANA hands to a registry (IANA IPv4 Address Space and IPv6 Global Unicast Address
# Assignments registries), so anything wider is a typo, not a provider's range.
WIDEST_RANGE = 8
WIDEST_RANGE6 = 12
GROUP_KIND = "CiliumCIDRGroup"
NO_GROUPS: Mapping[str, CidrGroup] = MappingProxyType({})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL_FAMILIES = frozenset(Family)


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
    groups: tuple[str, ...] = ()  # the CiliumCIDRGroups its allow rules take sources from


@dataclass(frozen=True, slots=True)
class _Deny:
    """One ingressDeny peer: a network minus its `except` networks."""

    network: Network
    excepted: tuple[Network, ...] = ()

    def remove_from(self, nets: list[Network]) -> list[Network]:
        """`nets` minus this peer: (nets - network) + (nets & network & each except)."""
        denied = _intersect(nets, self.network)
        back = [n for e in self.excepted for n in _intersect(denied, e)]
        return _subtract(nets, self.network) + back


def _subtract(nets: list[Network], cut: Network) -> list[Network]:
    """`nets` minus `cut`; a network of the other family is left as it is."""
    found: list[Network] = []
    for net in nets:
        if net.version != cut.version or not net.overlaps(cut):
            found.append(net)
        elif not net.subnet_of(cut):  # type: ignore[arg-type]  # same version, checked above
            found.extend(net.address_exclude(cut))  # type: ignore[arg-type]
    return found


def _intersect(nets: list[Network], other: Network) -> list[Network]:
    """The parts of `nets` inside `other` (of its family)."""
    return [
        net if net.subnet_of(other) else other  # type: ignore[arg-type]
        for net in nets
        if net.version == other.version and net.overlaps(other)
    ]


@dataclass(frozen=True, slots=True)
class _Context:
    """What validating one policy's sources needs besides the policy itself."""

    owner: str
    reserved: Sequence[Network]
    groups: Mapping[str, CidrGroup] | None
    allow_ranges: bool
    families: frozenset[Family] = frozenset({Family.IPV4})


def parse_policy(
    raw: Mapping[str, Any],
    reserved: Sequence[Network] = DEFAULT_RESERVED + DEFAULT_RESERVED6,
    *,
    groups: Mapping[str, CidrGroup] | None = NO_GROUPS,
    allow_ranges: bool = False,
    families: frozenset[Family] = frozenset({Family.IPV4}),
) -> PolicySpec:
    """Validate a raw CCNP and extract its sources and pod selectors; raises PolicyError.

    `groups` are the CiliumCIDRGroups by name (None: their CRD is not installed); with
    `allow_ranges` (`--allow-source-ranges`) a source may be a prefix, not only a host;
    `families` (`--ip-families`) are the families a source may be of.
    """
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    name = name if isinstance(name, str) and name else "<unnamed>"
    owner = f"{KIND} {name}"
    context = _Context(owner, reserved, groups, allow_ranges, families)
    found: list[tuple[str, EndpointSelector | None, list[Network], Any]] = []
    denies: list[_Deny] = []
    selectors: list[EndpointSelector] = []
    used: list[str] = []
    for path, rule in _rules(raw, owner):
        selector = _rule_selector(rule, path, owner)
        if selector is not None and selector not in selectors:
            selectors.append(selector)
        for entry_path, nets, ports in _allowed(
            rule.get("ingress"), f"{path}.ingress", context, used
        ):
            found.append((entry_path, selector, nets, ports))
        denies.extend(_denied(rule.get("ingressDeny"), f"{path}.ingressDeny", context))

    def kept(nets: list[Network]) -> list[Network]:
        for deny in denies:
            nets = deny.remove_from(nets)
        return _tidy(nets, allow_ranges)

    ingress = tuple(
        IngressRule(path, selector, tuple(source_text(n) for n in kept(nets)), ports)
        for path, selector, nets, ports in found
    )
    sources = kept([n for _, _, nets, _ in found for n in nets])
    uid, generation = metadata.get("uid"), metadata.get("generation")
    return PolicySpec(
        name=name,
        uid=uid if isinstance(uid, str) else "",
        generation=generation if type(generation) is int else 0,
        sources=tuple(source_text(n) for n in sources),
        selectors=tuple(selectors),
        ingress=ingress,
        groups=tuple(dict.fromkeys(used)),
    )


def source_text(network: Network) -> str:
    """A source as RouterOS stores it in an address list: a bare address for an IPv4 /32
    (docs/routeros-lab-cases.md cases 9 and 30), an IPv6 host with its /128 (case 1), else
    network address and prefix (case 3), IPv6 in lower-case compressed form (case 2)."""
    if network.version == 4 and network.prefixlen == 32:
        return str(network.network_address)
    return str(network)


def _tidy(nets: list[Network], allow_ranges: bool) -> list[Network]:
    """Sorted (IPv4 first) and without duplicates; with ranges allowed, the smallest covering
    set of prefixes per family (without, every source is a host and stays one entry)."""
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    if allow_ranges:
        return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return [*sorted(set(v4)), *sorted(set(v6))]


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
    """`fromCIDRSet` entries, each a mapping with a cidr, a cidrGroupRef or a cidrGroupSelector."""
    entries = []
    for i, entry in enumerate(_list(rule.get("fromCIDRSet"), f"{path}.fromCIDRSet", owner)):
        entry_path = f"{path}.fromCIDRSet[{i}]"
        if not isinstance(entry, Mapping):
            raise field_error(owner, entry_path, entry, "is not a mapping with a cidr")
        if all(entry.get(k) is None for k in ("cidr", "cidrGroupRef", "cidrGroupSelector")):
            raise field_error(
                owner, entry_path, entry, "has neither cidr nor cidrGroupRef nor cidrGroupSelector"
            )
        entries.append((entry_path, entry))
    return entries


def _set_cidrs(
    entry: Mapping[str, Any], path: str, context: _Context
) -> list[tuple[str, Any, str | None]]:
    """(field path, raw CIDR, group name or None) of what one fromCIDRSet entry names: its
    `cidr`, or the `spec.externalCIDRs` of the group it references or every group it selects."""
    owner = context.owner
    if entry.get("cidr") is not None:
        return [(f"{path}.cidr", entry["cidr"], None)]
    field = "cidrGroupRef" if entry.get("cidrGroupRef") is not None else "cidrGroupSelector"
    value = entry[field]
    if context.groups is None:
        raise field_error(
            owner,
            f"{path}.{field}",
            value,
            f"references {GROUP_KIND}s, but the {GROUP_KIND} CRD (ciliumcidrgroups.cilium.io) "
            "is not installed in the cluster",
        )
    if field == "cidrGroupRef":
        if not isinstance(value, str) or not value:
            raise field_error(owner, f"{path}.{field}", value, "is not a group name")
        group = context.groups.get(value)
        if group is None:
            raise field_error(
                owner, f"{path}.{field}", value, f"names no {GROUP_KIND}: there is no group {value}"
            )
        chosen = [group]
    else:
        wanted = _label_selector(value, f"{path}.{field}", owner)
        chosen = [g for _, g in sorted(context.groups.items()) if wanted(g.labels)]
    found: list[tuple[str, Any, str | None]] = []
    for group in chosen:
        where = f"{path}.{field} ({GROUP_KIND} {group.name}) spec.externalCIDRs"
        cidrs = group.cidrs
        if cidrs is not None and not isinstance(cidrs, list):
            raise field_error(owner, where, cidrs, "is not a list")
        found.extend((f"{where}[{i}]", cidr, group.name) for i, cidr in enumerate(cidrs or []))
    return found


def _label_selector(raw: Any, path: str, owner: str) -> Callable[[Mapping[str, str]], bool]:
    """A Kubernetes label selector (matchLabels and matchExpressions, keys taken literally, as the
    API server matches labels): a predicate on a group's labels. `{}` matches every group."""
    if not isinstance(raw, Mapping):
        raise field_error(owner, path, raw, "is not a label selector (a mapping)")
    requirements: list[Requirement] = []
    labels = raw.get("matchLabels")
    if labels is not None:
        if not isinstance(labels, Mapping):
            raise field_error(owner, f"{path}.matchLabels", labels, "is not a mapping")
        for key, value in labels.items():
            if not isinstance(value, str):
                raise field_error(owner, f"{path}.matchLabels.{key}", value, "is not a string")
            requirements.append(Requirement(str(key), "In", (value,)))
    for i, expression in enumerate(
        _list(raw.get("matchExpressions"), f"{path}.matchExpressions", owner)
    ):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expression, Mapping):
            raise field_error(owner, where, expression, "is not a mapping")
        key, operator = expression.get("key"), expression.get("operator")
        values = _list(expression.get("values"), f"{where}.values", owner)
        if not isinstance(key, str) or not key:
            raise field_error(owner, f"{where}.key", key, "is not a non-empty label key")
        if operator not in OPERATORS:
            raise field_error(owner, f"{where}.operator", operator, f"is not one of {OPERATORS}")
        if not all(isinstance(v, str) for v in values):
            raise field_error(owner, f"{where}.values", values, "are not all strings")
        if (operator in ("In", "NotIn")) != bool(values):
            raise field_error(owner, f"{where}.values", values, f"do not fit {operator}")
        requirements.append(Requirement(key, operator, tuple(values)))
    return lambda group_labels: all(r.matches(group_labels) for r in requirements)


def _allowed(
    ingress: Any, path: str, context: _Context, used: list[str]
) -> list[tuple[str, list[Network], tuple[PortRule, ...] | None]]:
    """Each `ingress` entry with its sources and its ports; a source the router cannot mirror is
    an error. Entries without CIDR sources bring nothing to the router. The names of the groups
    the entries take sources from are appended to `used`."""
    owner = context.owner
    found = []
    for rule_path, rule in _peer_rules(ingress, path, owner):
        nets: list[Network] = []
        cidrs = _list(rule.get("fromCIDR"), f"{rule_path}.fromCIDR", owner)
        for i, value in enumerate(cidrs):
            nets.append(_source(value, f"{rule_path}.fromCIDR[{i}]", context))
        for entry_path, entry in _cidr_sets(rule, rule_path, owner):
            named = _set_cidrs(entry, entry_path, context)
            used.extend(group for _, _, group in named if group is not None)
            entry_nets = [_source(value, where, context) for where, value, _ in named]
            excepts = _list(entry.get("except"), f"{entry_path}.except", owner)
            if excepts and not context.allow_ranges:
                raise field_error(
                    owner,
                    f"{entry_path}.except",
                    entry["except"],
                    "is not supported in an allow rule without --allow-source-ranges: list the "
                    "allowed addresses in fromCIDR",
                )
            for i, value in enumerate(excepts):
                cut = _network(value, f"{entry_path}.except[{i}]", owner)
                entry_nets = _subtract(entry_nets, cut)
            nets.extend(entry_nets)
        if nets:
            ports = _to_ports(rule.get("toPorts"), f"{rule_path}.toPorts", owner)
            found.append((rule_path, nets, ports))
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


def _denied(ingress_deny: Any, path: str, context: _Context) -> list[_Deny]:
    """Every network the `ingressDeny` rules cover (world entities cover everything)."""
    owner = context.owner
    found = []
    for rule_path, rule in _peer_rules(ingress_deny, path, owner):
        cidrs = _list(rule.get("fromCIDR"), f"{rule_path}.fromCIDR", owner)
        for i, value in enumerate(cidrs):
            found.append(_Deny(_network(value, f"{rule_path}.fromCIDR[{i}]", owner)))
        for entry_path, entry in _cidr_sets(rule, rule_path, owner):
            excepts = _list(entry.get("except"), f"{entry_path}.except", owner)
            excepted = tuple(
                _network(e, f"{entry_path}.except[{i}]", owner) for i, e in enumerate(excepts)
            )
            for where, value, _ in _set_cidrs(entry, entry_path, context):
                found.append(_Deny(_network(value, where, owner), excepted))
        entities = _list(rule.get("fromEntities"), f"{rule_path}.fromEntities", owner)
        for i, entity in enumerate(entities):
            if not isinstance(entity, str):
                raise field_error(
                    owner, f"{rule_path}.fromEntities[{i}]", entity, "is not a string"
                )
            found.extend(_Deny(ipaddress.ip_network(n)) for n in WORLD_ENTITIES.get(entity, ()))
    return found


def _network(value: Any, path: str, owner: str) -> Network:
    """A CIDR in Cilium's notation: address, `/`, prefix length (host bits are masked off)."""
    if not isinstance(value, str):
        raise field_error(owner, path, value, "is not a string")
    if "${" in value or "{{" in value:
        raise field_error(owner, path, value, "is an unrendered template value, not a CIDR")
    address, slash, length = value.partition("/")
    if not slash and (is_ipv4(address) or ipv6_text(address) is not None):
        host = 32 if is_ipv4(address) else 128
        raise field_error(owner, path, value, f'has no prefix length (write "{value}/{host}")')
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


def _source(value: Any, path: str, context: _Context) -> Network:
    """One allowed source: a host (IPv4 /32, IPv6 /128), or with `--allow-source-ranges` a
    prefix no wider than /WIDEST_RANGE (IPv4) or /WIDEST_RANGE6 (IPv6), of a family
    `--ip-families` syncs; either must stay clear of the reserved ranges."""
    owner = context.owner
    address = _plain_host(value)
    network: Network
    if address is not None:
        network = ipaddress.IPv4Network(address)
    else:
        network = _network(value, path, owner)
    family = Family.IPV4 if network.version == 4 else Family.IPV6
    if family not in context.families:
        synced = ",".join(f.value for f in sorted(context.families))
        raise field_error(
            owner,
            path,
            value,
            f"is {'IPv4' if family is Family.IPV4 else 'IPv6'}, a family this job does not sync "
            f"(--ip-families {synced}): add {family.value} to --ip-families to sync it",
        )
    host, widest = (32, WIDEST_RANGE) if family is Family.IPV4 else (128, WIDEST_RANGE6)
    name = "IPv4" if family is Family.IPV4 else "IPv6"
    if network.prefixlen == 0:
        raise field_error(
            owner,
            path,
            value,
            f"is every {name} address, which is never synced: only single addresses (/{host}) "
            f"or, with --allow-source-ranges, prefixes up to /{widest} wide are",
        )
    if network.prefixlen != host:
        if not context.allow_ranges:
            raise field_error(
                owner,
                path,
                value,
                f"is not a single {name} address (/{host}): pass --allow-source-ranges to sync "
                "ranges",
            )
        if network.prefixlen < widest:
            raise field_error(
                owner, path, value, f"is wider than /{widest}, the widest {name} range synced"
            )
    for block in context.reserved:
        if block.version == network.version and network.overlaps(block):
            relation = "is in" if network.subnet_of(block) else "overlaps"  # type: ignore[arg-type]
            raise field_error(owner, path, value, f"{relation} the reserved range {block}")
    return network
