"""The one place that knows how router objects are named and how ownership is recognised.

Every object the tool writes carries the prefix (default `router-policy-sync`):

- address list  `<prefix>::<policy>`                         (one entry per source IP)
- filter rule   comment `<prefix>::<policy>::<proto>`
- NAT rule      comment `<prefix>::<policy>::<proto>::<port>`
- marker        the user's filter rule with comment exactly `<prefix>::marker`

The same names are used in the IPv4 menus (`/ip/firewall/...`) and the IPv6 ones
(`/ipv6/firewall/...`); each family has its own marker, in its own filter table.

A filter or NAT rule is owned when its comment starts with `<prefix>::`, is not marker-like
(`<prefix>::marker<anything>`: the marker itself, or a near miss such as `<prefix>::marker2` or
`<prefix>::marker ` a user may have typed), and its policy part is a valid Kubernetes object name
(a DNS-1123 subdomain of at most 253 characters); an address-list entry is owned when its list
starts with `<prefix>::` and a valid name. Anything else is foreign and never modified, moved or
deleted. The scheme is the earlier Go controller's, kept byte for byte so
users can switch without touching their router.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sync_job.model import Family
from sync_job.router.tables import Table

DEFAULT_PREFIX = "router-policy-sync"
SEPARATOR = "::"
MARKER_NAME = "marker"
# Kubernetes object names are DNS-1123 subdomains, so they can never contain the separator.
_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# A DNS-1123 subdomain, as Kubernetes validates object names (k8s.io/apimachinery
# pkg/util/validation IsDNS1123Subdomain): lowercase labels joined by '.', at most 253 chars.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME_PATTERN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
NAME_MAX = 253


def is_object_name(name: str) -> bool:
    """Whether `name` could be a Kubernetes object's name (a DNS-1123 subdomain)."""
    return len(name) <= NAME_MAX and _NAME_PATTERN.match(name) is not None


class InvalidPrefix(ValueError):
    """The comment prefix could make this tool claim another instance's objects."""


@dataclass(frozen=True, slots=True)
class Ownership:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX_PATTERN.fullmatch(self.prefix):
            raise InvalidPrefix(
                f"comment prefix {self.prefix!r} must be 1-63 letters, digits, '.', '_' or '-' "
                "(no ':'), starting with a letter or digit"
            )

    @property
    def marker_comment(self) -> str:
        return f"{self.prefix}{SEPARATOR}{MARKER_NAME}"

    def address_list(self, policy: str) -> str:
        return f"{self.prefix}{SEPARATOR}{policy}"

    def filter_comment(self, policy: str, protocol: str) -> str:
        return f"{self.prefix}{SEPARATOR}{policy}{SEPARATOR}{protocol}"

    def nat_comment(self, policy: str, protocol: str, port: int) -> str:
        return f"{self.prefix}{SEPARATOR}{policy}{SEPARATOR}{protocol}{SEPARATOR}{port}"

    def is_marker(self, table: Table, fields: Mapping[str, str]) -> bool:
        return table.is_filter and fields.get("comment") == self.marker_comment

    @property
    def head(self) -> str:
        """What every owned name starts with: a cheap first test before `owner_policy`."""
        return self.prefix + SEPARATOR

    @staticmethod
    def name_field(table: Table) -> str:
        """The field that carries an object's owned name in `table`."""
        return "list" if table.is_address_list else "comment"

    def owner_policy(self, table: Table, fields: Mapping[str, str]) -> str | None:
        """The policy an owned object belongs to, or None when the object is foreign.

        Dynamic rows are RouterOS's own and never owned, whatever their comment says. A
        marker-like comment and a policy part that is no Kubernetes object name (empty,
        uppercase, a space, longer than 253) are foreign: no policy could have written them.
        """
        if fields.get("dynamic") == "true":
            return None
        name = fields.get(self.name_field(table), "")
        if not name.startswith(self.head):
            return None
        rest = name[len(self.head) :]
        if not table.is_address_list and rest.startswith(MARKER_NAME):
            return None
        policy = rest.split(SEPARATOR, 1)[0]
        return policy if is_object_name(policy) else None

    def can_own(self, policy: str) -> bool:
        """Whether the objects written for `policy` would be recognised as owned on the next
        read; a policy named `marker…` could not be (its rules look like the marker)."""
        return is_object_name(policy) and not policy.startswith(MARKER_NAME)

    def marker_warnings(self, tables: Mapping[Table, Sequence[Mapping[str, str]]]) -> list[str]:
        """What looks wrong about a (single) marker that is still usable: a chain other than
        `forward`, where RouterOS filters the dst-NATed traffic the rules are for."""
        warnings = []
        for table in (t for t in tables if t.is_filter):
            markers = [row for row in tables[table] if self.is_marker(table, row)]
            if len(markers) != 1 or markers[0].get("chain") == "forward":
                continue
            marker = markers[0]
            routed = "dst-NATed" if table.family is Family.IPV4 else "routed"
            warnings.append(
                f"the {table.family.value} marker rule {marker.get('.id')} ({self.marker_comment})"
                f" is in chain {marker.get('chain')!r}, not 'forward': {routed} traffic is "
                "accepted or dropped in forward, so the rules placed above the marker may never "
                "match it"
            )
        return warnings

    def identity(self, table: Table, fields: Mapping[str, str]) -> str:
        """The key two objects share when they are the same object to the tool."""
        if table.is_address_list:
            return f"{fields.get('list', '')} {normalise_address(fields.get('address', ''))}"
        return fields.get("comment", "")


def normalise_address(address: str) -> str:
    """An address (list entry, rule matcher, NAT target) in the one form every way of writing it
    compares as, so a value the router rewrote on store never reads as drift.

    Router rewrites recorded in docs/routeros-lab-cases.md: IPv4 `/32` dropped (cases 9, 30), an
    IPv4 range that is one CIDR stored as it (case 9), an IPv4 prefix's host bits cleared (DOC-AL,
    case 3), IPv6 stored lower case and compressed with `/128` on a bare host (cases 1, 2, 30).
    IPv6 host bits are also cleared here (case 3 says UNKNOWN, so both answers must compare
    equal). A leading `!` (negated matcher) is kept; text that is not an address (a DNS name,
    garbage) only loses a final `/32`.
    """
    bare = address.removeprefix("!")
    negation = address[: len(address) - len(bare)]
    try:
        if ":" in bare and "%" not in bare:  # a zone index is not a stored address
            net6 = ipaddress.IPv6Network(bare, strict=False)
            return f"{negation}{net6.network_address}/{net6.prefixlen}"
        if "-" in bare:
            low, high = (ipaddress.IPv4Address(part) for part in bare.split("-", 1))
            nets = list(ipaddress.summarize_address_range(low, high))
            net = nets[0] if len(nets) == 1 else None
            if net is None:
                return f"{negation}{low}-{high}"
        else:
            net = ipaddress.IPv4Network(bare, strict=False)
    except ValueError:
        return address.removesuffix("/32")
    text = str(net.network_address) if net.prefixlen == 32 else str(net)
    return f"{negation}{text}"
