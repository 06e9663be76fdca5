"""What the router must hold for a policy: pure translation of a PolicyTarget into router rows.

The field sets here are the compatibility contract with the earlier Go controller; the planner
compares exactly these fields (plus `disabled`) and nothing else the user may have added.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sync_job.model import PolicyTarget
from sync_job.router.ownership import Ownership
from sync_job.router.tables import RouterObject, Table


def policy_objects(
    target: PolicyTarget, ownership: Ownership, filter_chain: str
) -> list[RouterObject]:
    """Address-list entries, one filter rule per protocol and one NAT rule per protocol/port."""
    address_list = ownership.address_list(target.name)
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
                    "comment": ownership.nat_comment(target.name, protocol, port),
                },
            )
            for port in ports
        )
    return objects


def desired_objects(
    targets: Iterable[PolicyTarget], ownership: Ownership, filter_chain: str
) -> Sequence[RouterObject]:
    objects: list[RouterObject] = []
    for target in targets:
        objects.extend(policy_objects(target, ownership, filter_chain))
    return objects
