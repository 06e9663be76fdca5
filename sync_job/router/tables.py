"""The RouterOS menus the job reads and writes, and the row type it compares them with.

Each IP family has its own three menus (`/ip/firewall/...` and `/ipv6/firewall/...`); the job
reads only those of the families it syncs (`--ip-families`). Router objects are kept as the
string-valued field mappings RouterOS itself speaks, so the planner can compare them with what
it reads without translation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from sync_job.model import Family


class Table(StrEnum):
    """A RouterOS menu the tool reads and writes, by its REST path."""

    FILTER = "ip/firewall/filter"
    NAT = "ip/firewall/nat"
    ADDRESS_LIST = "ip/firewall/address-list"
    IPV6_FILTER = "ipv6/firewall/filter"
    IPV6_NAT = "ipv6/firewall/nat"
    IPV6_ADDRESS_LIST = "ipv6/firewall/address-list"

    @property
    def kind(self) -> str:
        """`filter`, `nat` or `address-list`, whatever the family."""
        return self.value.rsplit("/", 1)[1]

    @property
    def family(self) -> Family:
        return Family.IPV6 if self.value.startswith("ipv6/") else Family.IPV4

    @property
    def label(self) -> str:
        """How a plan names the menu: family and kind, e.g. `ipv6 filter`."""
        return f"{self.family.value} {self.kind}"

    @property
    def is_filter(self) -> bool:
        return self.kind == "filter"

    @property
    def is_nat(self) -> bool:
        return self.kind == "nat"

    @property
    def is_address_list(self) -> bool:
        return self.kind == "address-list"

    @classmethod
    def of(cls, family: Family, kind: str) -> Table:
        return cls(f"{'ipv6' if family is Family.IPV6 else 'ip'}/firewall/{kind}")


def tables_of(families: Iterable[Family]) -> tuple[Table, ...]:
    """The menus of `families`, in the enum's order (IPv4's first)."""
    wanted = set(families)
    return tuple(table for table in Table if table.family in wanted)


@dataclass(frozen=True, slots=True)
class RouterObject:
    """One row the router should hold: its table and its string fields, as RouterOS speaks them."""

    table: Table
    fields: Mapping[str, str]
