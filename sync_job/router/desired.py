"""What the router must hold for a policy: pure translation of a PolicyTarget into router rows.

The field sets here are the compatibility contract with the earlier Go controller; the planner
compares exactly these fields (plus `disabled` and the `SCOPE_FIELDS`) and nothing else the user
may have added. With `--wan-interface-list` every rule is also scoped to traffic arriving on that
interface list, and a filter rule to connections the router itself dst-NATed to the gateway, so
a source in the list reaches only the gateway, only from the WAN side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sync_job.model import PolicyTarget
from sync_job.router.ownership import Ownership
from sync_job.router.tables import RouterObject, Table

# What `--wan-interface-list` adds, per table. They are managed even when the flag is unset: a rule
# read with one of them while the desired row lacks it is updated to remove it.
SCOPE_FIELDS: dict[Table, tuple[str, ...]] = {
    Table.FILTER: ("in-interface-list", "connection-nat-state", "dst-address"),
    Table.NAT: ("in-interface-list",),
    Table.ADDRESS_LIST: (),
}


def policy_objects(
    target: PolicyTarget,
    ownership: Ownership,
    filter_chain: str,
    wan_interface_list: str | None = None,
) -> list[RouterObject]:
    """Address-list entries, one filter rule per protocol and one NAT rule per protocol/port."""
    address_list = ownership.address_list(target.name)
    nat_scope: dict[str, str] = {}
    filter_scope: dict[str, str] = {}
    if wan_interface_list:
        nat_scope = {"in-interface-list": wan_interface_list}
        filter_scope = {
            **nat_scope,
            "connection-nat-state": "dstnat",
            "dst-address": target.gateway.ip,
        }
    objects = [
        RouterObject(Table.ADDRESS_LIST, {"list": address_list, "address": source})
        for source in target.sources
    ]
    ports_by_protocol: dict[str, list[int]] = defaultdict(list)
    for port in target.gateway.ports:
        ports_by_protocol[port.protocol].append(port.port)
    for protocol in sorted(ports_by_protocol):
        ports = sorted(set(ports_by_protocol[protocol]))
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
                    "to-addresses": target.gateway.ip,
                    "to-ports": str(port),
                    **nat_scope,
                    "comment": ownership.nat_comment(target.name, protocol, port),
                },
            )
            for port in ports
        )
    return objects


def desired_objects(
    targets: Iterable[PolicyTarget],
    ownership: Ownership,
    filter_chain: str,
    wan_interface_list: str | None = None,
) -> Sequence[RouterObject]:
    objects: list[RouterObject] = []
    for target in targets:
        objects.extend(policy_objects(target, ownership, filter_chain, wan_interface_list))
    return objects
