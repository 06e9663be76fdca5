"""The RouterOS menus the job reads and writes, and the row type it compares them with.

Router objects are kept as the string-valued field mappings RouterOS itself speaks, so the
planner can compare them with what it reads without translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Table(StrEnum):
    """A RouterOS menu the tool reads and writes, by its REST path."""

    FILTER = "ip/firewall/filter"
    NAT = "ip/firewall/nat"
    ADDRESS_LIST = "ip/firewall/address-list"

    @property
    def label(self) -> str:
        return self.value.rsplit("/", 1)[1]


@dataclass(frozen=True, slots=True)
class RouterObject:
    """One row the router should hold: its table and its string fields, as RouterOS speaks them."""

    table: Table
    fields: Mapping[str, str]
