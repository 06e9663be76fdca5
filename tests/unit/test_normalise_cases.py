"""Compare-side normalisation against every recorded way a router rewrites a managed value.

Each row cites its case in docs/routeros-lab-cases.md: what the job (or a user) wrote, and what a
real router reads back, must normalise to one value, so a second run plans nothing. The last
test runs the planner itself on a router whose tables hold the rewritten forms.
"""

from __future__ import annotations

import pytest

from sync_job.model import Gateway, PolicyTarget, ServicePort
from sync_job.router.desired import policy_objects
from sync_job.router.ownership import Ownership, normalise_address
from sync_job.router.planner import Marker, normalise, plan_changes
from sync_job.router.tables import Table

# (case, field, as written, as a router reads it back)
REWRITES = [
    ("case-1", "address", "2001:db8::5", "2001:db8::5/128"),
    ("case-2", "address", "2001:DB8:0:0:0:0:0:5", "2001:db8::5/128"),
    ("case-2-prefix", "address", "2001:DB8:0:0::1/64", "2001:db8::1/64"),
    ("case-3", "address", "2001:db8::5/64", "2001:db8::/64"),  # host bits: UNKNOWN either way
    ("case-9", "address", "192.0.34.166/32", "192.0.34.166"),
    ("case-9-range", "address", "192.168.0.0-192.168.1.255", "192.168.0.0/23"),
    ("case-9-host-bits", "address", "10.1.1.5/24", "10.1.1.0/24"),
    ("case-13", "dst-port", "80,443,4000", "443,4000,80"),
    ("case-13-spaces", "dst-port", "80, 443", "443,80"),
    ("case-13-repeats", "to-ports", "80,80", "80"),
    ("case-15", "protocol", "tcp", "6"),  # UNKNOWN whether a router names numbers
    ("case-15-case", "protocol", "UDP", "udp"),
    ("case-16", "disabled", "no", "false"),
    ("case-16-yes", "disabled", "yes", "true"),
    ("case-17", "disabled", "false", ""),  # a rule written without `disabled` has no key
    ("case-27", "to-address", "fd8d::2", "fd8d::2/128"),
    ("case-30", "dst-address", "2a02:8109:8380:9002::10", "2a02:8109:8380:9002::10/128"),
    ("case-30-ipv4", "src-address", "192.0.2.1/32", "192.0.2.1"),
    ("case-30-dst", "dst-address", "10.0.0.5/32", "10.0.0.5"),
    ("case-30-negated", "src-address", "!2001:DB8::7", "!2001:db8::7/128"),
    ("nat-target", "to-addresses", "10.0.0.5/32", "10.0.0.5"),  # IPv4 target: UNKNOWN, both
]

# (case, field, one value, a value a router never makes of it)
DIFFERENT = [
    ("case-1-not-ipv4", "address", "2001:db8::5", "2001:db8::5/64"),
    ("case-8-prefix", "address", "10.10.10.10", "10.10.10.0/24"),
    ("case-9-range", "address", "10.0.0.1-10.0.0.5", "10.0.0.1/29"),
    ("case-13", "dst-port", "80,443", "80,8443"),
    ("case-15", "protocol", "tcp", "udp"),
    ("case-15-number", "protocol", "6", "17"),
    ("case-16", "disabled", "yes", "false"),
    ("case-30-negated", "dst-address", "!10.0.0.5", "10.0.0.5"),
]


@pytest.mark.parametrize(("field", "written", "read"), [r[1:] for r in REWRITES],
                         ids=[r[0] for r in REWRITES])  # fmt: skip
def test_a_router_rewrite_compares_equal(field: str, written: str, read: str) -> None:
    assert normalise(field, written) == normalise(field, read)
    assert normalise(field, normalise(field, read)) == normalise(field, read)  # idempotent


@pytest.mark.parametrize(("field", "one", "other"), [r[1:] for r in DIFFERENT],
                         ids=[r[0] for r in DIFFERENT])  # fmt: skip
def test_a_real_difference_stays_a_difference(field: str, one: str, other: str) -> None:
    assert normalise(field, one) != normalise(field, other)


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("2001:DB8::5", "2001:db8::5/128"),  # case 1, case 2: the router's stored form
        ("2001:db8::5/128", "2001:db8::5/128"),
        ("123:dead:beaf::/64", "123:dead:beaf::/64"),  # case 3
        ("192.0.2.1/32", "192.0.2.1"),  # case 9
        ("192.168.0.0-192.168.1.255", "192.168.0.0/23"),  # case 9
        ("10.0.0.1-10.0.0.5", "10.0.0.1-10.0.0.5"),  # not one CIDR: kept as a range
        ("!192.0.2.1/32", "!192.0.2.1"),
        ("host.example", "host.example"),  # a DNS entry is not an address
        ("fe80::1%ether1", "fe80::1%ether1"),
        ("", ""),
    ],
)
def test_normalise_address_gives_the_stored_form(address: str, normal: str) -> None:
    assert normalise_address(address) == normal


def test_a_router_holding_the_rewritten_forms_plans_nothing() -> None:
    """Owned rows as a router (or a user's hand edit the router kept) may hold them: ports in
    another order (case 13), `disabled` written as `false` or absent (cases 16, 17), a `/32`
    on the NAT target and the filter rule's `dst-address` (case 30), `6` for `tcp` (case 15)."""
    own = Ownership()
    target = PolicyTarget(
        "web",
        ("192.0.2.100",),
        Gateway("default", "web", "10.0.0.5", (ServicePort("tcp", 80), ServicePort("tcp", 443))),
    )
    wanted = policy_objects(target, own, "forward", wan_interface_list="WAN")
    marker = {
        ".id": "*M",
        "chain": "forward",
        "action": "passthrough",
        "comment": own.marker_comment,
    }
    tables: dict[Table, list[dict[str, str]]] = {table: [] for table in Table}
    for number, obj in enumerate(wanted):
        row = {".id": f"*{number + 1:X}", **obj.fields, "disabled": "false"}
        if obj.table is Table.FILTER:
            row |= {"dst-port": "443,80", "dst-address": "10.0.0.5/32", "protocol": "6"}
            del row["disabled"]
        if obj.table is Table.NAT:
            row["to-addresses"] = "10.0.0.5/32"
        tables[obj.table].append(row)
    tables[Table.FILTER].append(marker)
    result = plan_changes(wanted, tables, own, Marker("*M", "forward", own.marker_comment))
    assert result.changes == ()
