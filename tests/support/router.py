"""The router the tests start from and the command as a user runs it.

`seed_router` seeds an emulator like a default-configuration router (foreign rules around the
marker, foreign entries); `assert_foreign_unchanged` checks those are all still there, unchanged
and in order; `run_cli` runs the installed command and checks the password never shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sync_job.testing.emulator import RouterOSEmulator

# A sentinel: no test output or log may ever contain it.
PASSWORD = "Sentinel-Pa55word-8c1f"
REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"  # third-party test data, each folder with a SOURCE.md
FILTER, NAT, ADDRESS_LIST = "ip/firewall/filter", "ip/firewall/nat", "ip/firewall/address-list"


@dataclass
class Router:
    emulator: RouterOSEmulator
    url: str
    foreign: dict[str, list[dict[str, str]]]
    marker_id: str

    def writes(self) -> int:
        return sum(n for (method, _), n in self.emulator.requests.items() if method != "GET")

    def owned(self, table: str) -> list[dict[str, str]]:
        key = "list" if table.endswith("address-list") else "comment"  # IPv4 or IPv6
        return [
            row
            for row in self.emulator.rows(table)
            if row.get(key, "").startswith("router-policy-sync::")
            and row.get("comment") != "router-policy-sync::marker"
        ]


def seed_router(emulator: RouterOSEmulator) -> tuple[dict[str, list[dict[str, str]]], str]:
    """A default-configuration-like router: foreign rules around the marker, foreign entries."""
    foreign: dict[str, list[dict[str, str]]] = {FILTER: [], NAT: [], ADDRESS_LIST: []}

    def add(table: str, fields: dict[str, str], **kw: bool) -> dict[str, str]:
        row = emulator.seed(table, fields, **kw)
        foreign[table].append(row)
        return row

    add(
        FILTER,
        {
            "chain": "input",
            "action": "accept",
            "connection-state": "established,related",
            "comment": "defconf: accept established,related",
        },
    )
    add(
        FILTER,
        {
            "chain": "forward",
            "action": "accept",
            "protocol": "tcp",
            "dst-port": "22",
            "comment": "router-policy-sync-other::p::tcp",
        },
    )
    marker = emulator.seed(
        FILTER,
        {
            "chain": "forward",
            "action": "passthrough",
            "disabled": "yes",
            "comment": "router-policy-sync::marker",
        },
    )
    add(
        FILTER,
        {
            "chain": "forward",
            "action": "drop",
            "in-interface-list": "WAN",
            "comment": "defconf: drop all from WAN not DSTNATed",
        },
    )
    add(NAT, {"chain": "srcnat", "action": "masquerade", "out-interface-list": "WAN"})
    add(
        NAT,
        {
            "chain": "dstnat",
            "action": "dst-nat",
            "protocol": "tcp",
            "dst-port": "2222",
            "to-addresses": "192.168.88.2",
            "to-ports": "22",
            "comment": "ssh to nas",
        },
    )
    add(ADDRESS_LIST, {"list": "blocklist", "address": "192.0.2.66"})
    add(ADDRESS_LIST, {"list": "router-policy-sync", "address": "192.0.2.67"})
    add(ADDRESS_LIST, {"list": "router-policy-syncx::my-policy", "address": "203.0.113.10"})
    return foreign, marker[".id"]


def assert_foreign_unchanged(
    emulator: RouterOSEmulator, foreign: dict[str, list[dict[str, str]]]
) -> None:
    for table, seeded in foreign.items():
        rows = {row[".id"]: row for row in emulator.rows(table)}
        for row in seeded:
            assert rows.get(row[".id"]) == row, f"foreign {table} row {row} was changed or removed"
        order = [r[".id"] for r in emulator.rows(table) if r[".id"] in {s[".id"] for s in seeded}]
        assert order == [row[".id"] for row in seeded], f"foreign {table} rows were reordered"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None
) -> Result:
    """Run the installed command as a user would; the sentinel password must never show.
    `stdin`, when given, is fed to its standard input."""
    completed = subprocess.run(
        [sys.executable, "-m", "sync_job", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **os.environ,
            "MIKROTIK_PASSWORD": PASSWORD,
            "MIKROTIK_ALLOW_PLAIN_HTTP": "1",
            **(env or {}),
        },
    )
    assert PASSWORD not in completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    return Result(completed.returncode, completed.stdout, completed.stderr)
