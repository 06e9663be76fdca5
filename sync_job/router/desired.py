"""What the router must hold for a policy: pure translation of a PolicyTarget into router rows.

IPv4 (`/ip/firewall`): an address-list entry per source, a filter rule per protocol and a NAT
rule per protocol/port. These field sets are the compatibility contract with the earlier Go
controller; the planner compares exactly these fields (plus `disabled` and the `SCOPE_FIELDS`)
and nothing else the user may have added. With `--wan-interface-list` every rule is also scoped
to traffic arriving on that interface list, and a filter rule to connections the router itself
dst-NATed to the gateway, so a source in the list reaches only the gateway, only from the WAN.

IPv6 (`/ipv6/firewall`): an address-list entry per source and a filter rule per protocol that
names the gateway's IPv6 address itself (`dst-address`): nothing is NATed in front of an IPv6
Service, so the accept rule is the whole opening. No IPv6 NAT rule is ever wanted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from sync_job.model import Family, PolicyTarget
from sync_job.router.ownership import Ownership
from sync_job.router.tables import RouterObject, Table

# What `--wan-interface-list` adds, per table. They are managed even when the flag is unset: a rule
# read with one of them while the desired row lacks it is updated to remove it.
SCOPE_FIELDS: dict[Table, tuple[str, ...]] = {
    Table.FILTER: ("in-interface-list", "connection-nat-state", "dst-address"),
    Table.NAT: ("in-interface-list",),
    Table.ADDRESS_LIST: (),
    Table.IPV6_FILTER: ("in-interface-list",),
    Table.IPV6_NAT: (),
    Table.IPV6_ADDRESS_LIST: (),
}


def _ports_by_protocol(target: PolicyTarget) -> dict[str, list[int]]:
    ports: dict[str, set[int]] = defaultdict(set)
    for port in target.gateway.ports:
        ports[port.protocol].add(port.port)
    return {protocol: sorted(ports[protocol]) for protocol in sorted(ports)}


def policy_objects(
    target: PolicyTarget,
    ownership: Ownership,
    filter_chain: str,
    wan_interface_list: str | None = None,
) -> list[RouterObject]:
    """The IPv4 objects: address-list entries, a filter rule per protocol and a NAT rule per
    protocol/port."""
    address_list = ownership.address_list(target.name)
    gateway = target.gateway.ip or ""
    nat_scope: dict[str, str] = {}
    filter_scope: dict[str, str] = {}
    if wan_interface_list:
        nat_scope = {"in-interface-list": wan_interface_list}
        filter_scope = {**nat_scope, "connection-nat-state": "dstnat", "dst-address": gateway}
    objects = [
        RouterObject(Table.ADDRESS_LIST, {"list": address_list, "address": source})
        for source in target.sources_of(Family.IPV4)
    ]
    for protocol, ports in _ports_by_protocol(target).items():
        objects.append(
            RouterObject(
                Table.FILTER,
                {
                    "chain": filter_chain,
                    "action": "accept",
                    "protocol": protocol,
                    "dst-port": ",".join(str(port) for port in ports),
                    "src-address-list": address_list,
                    **filter_scope,
                    "comment": ownership.filter_comment(target.name, protocol),
                },
            )
        )
        objects.extend(
            RouterObject(
                Table.NAT,
                {
                    "chain": "dstnat",
                    "action": "dst-nat",
                    "protocol": protocol,
                    "dst-port": str(port),
                    "src-address-list": address_list,
                    "to-addresses": gateway,
                    "to-ports": str(port),
                    **nat_scope,
                    "comment": ownership.nat_comment(target.name, protocol, port),
                },
            )
            for port in ports
        )
    return objects


def policy_objects6(
    target: PolicyTarget,
    ownership: Ownership,
    filter_chain: str,
    wan_interface_list: str | None = None,
) -> list[RouterObject]:
    """The IPv6 objects: address-list entries and a filter rule per protocol to the gateway's
    IPv6 address (written with its /128, as RouterOS keeps it: docs/routeros-lab-cases.md
    case 30)."""
    address_list = ownership.address_list(target.name)
    scope = {"in-interface-list": wan_interface_list} if wan_interface_list else {}
    objects = [
        RouterObject(Table.IPV6_ADDRESS_LIST, {"list": address_list, "address": source})
        for source in target.sources_of(Family.IPV6)
    ]
    objects.extend(
        RouterObject(
            Table.IPV6_FILTER,
            {
                "chain": filter_chain,
                "action": "accept",
                "protocol": protocol,
                "dst-port": ",".join(str(port) for port in ports),
                "src-address-list": address_list,
                "dst-address": f"{target.gateway.ip6}/128",
                **scope,
                "comment": ownership.filter_comment(target.name, protocol),
            },
        )
        for protocol, ports in _ports_by_protocol(target).items()
    )
    return objects


def desired_objects(
    targets: Iterable[PolicyTarget],
    ownership: Ownership,
    chains: Mapping[Family, str],
    wan_interface_list: str | None = None,
) -> Sequence[RouterObject]:
    """Every target's objects in the families of `chains` (family -> its marker's chain), for
    the families each target needs."""
    objects: list[RouterObject] = []
    for target in targets:
        if Family.IPV4 in chains and Family.IPV4 in target.families:
            objects.extend(
                policy_objects(target, ownership, chains[Family.IPV4], wan_interface_list)
            )
        if Family.IPV6 in chains and Family.IPV6 in target.families:
            objects.extend(
                policy_objects6(target, ownership, chains[Family.IPV6], wan_interface_list)
            )
    return objects
