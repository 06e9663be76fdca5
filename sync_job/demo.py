"""`router-policy-sync demo`: the whole pass on a bundled example, against an in-process emulator.

The emulated router starts with the marker rule and a few foreign rules and entries (the kind a
default MikroTik configuration has), so the demo also shows that those are left alone.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from importlib.resources import as_file, files

from sync_job import render
from sync_job.emulator import RouterOSEmulator
from sync_job.model import Table
from sync_job.routeros import RouterSettings, RouterWriter, make_http_client
from sync_job.run import RunReport, SyncSettings, run_once
from sync_job.source_file import load_snapshot

DEMO_PASSWORD = "demo-password"  # the in-process emulator's own, never a router's


def demo_router() -> RouterOSEmulator:
    router = RouterOSEmulator("admin", DEMO_PASSWORD)
    filter_table = Table.FILTER.value
    router.seed(filter_table, {"chain": "input", "action": "accept",
                               "connection-state": "established,related",
                               "comment": "defconf: accept established,related"})  # fmt: skip
    router.seed(filter_table, {"chain": "forward", "action": "accept",
                               "connection-state": "established,related"})  # fmt: skip
    router.seed(filter_table, {"chain": "forward", "action": "passthrough", "disabled": "yes",
                               "comment": "router-policy-sync::marker"})  # fmt: skip
    router.seed(filter_table, {"chain": "forward", "action": "drop", "in-interface-list": "WAN",
                               "comment": "defconf: drop all from WAN"})  # fmt: skip
    router.seed(Table.NAT.value, {"chain": "srcnat", "action": "masquerade",
                                  "out-interface-list": "WAN",
                                  "comment": "defconf: masquerade"})  # fmt: skip
    router.seed(Table.ADDRESS_LIST.value, {"list": "blocklist", "address": "192.0.2.66"})
    return router


def _print_tables(router: RouterOSEmulator) -> None:
    for table in Table:
        print(f"/{table.value}:")
        for row in router.rows(table.value):
            shown = {k: v for k, v in row.items() if k not in ("bytes", "packets", "invalid")}
            print("  " + " ".join(f"{k}={v}" for k, v in shown.items()))
    print()


def _pass(router: RouterOSEmulator, output: str) -> RunReport:
    settings = RouterSettings("https://router.demo.invalid/rest", "admin", DEMO_PASSWORD)
    with (
        as_file(files("sync_job") / "examples" / "demo.yaml") as example,
        make_http_client(settings, transport=router.transport()) as http,
    ):
        report = run_once(
            read_cluster=lambda: load_snapshot(example),
            router=RouterWriter(http, settings),
            kube=None,
            settings=SyncSettings(),
            check=False,
            now=lambda: datetime.now(UTC),
        )
    formatter = render.to_json if output == "json" else render.to_text
    sys.stdout.write(formatter(report, check=False))
    return report


def run_demo(output: str = "text") -> int:
    router = demo_router()
    print("== First run: the router has the marker and some foreign rules ==\n")
    first = _pass(router, output)
    print("\n== The router now holds ==\n")
    _print_tables(router)
    print("== Second run: nothing changed, so nothing is written ==\n")
    router.reset_counts()
    second = _pass(router, output)
    writes = sum(n for (method, _), n in router.requests.items() if method != "GET")
    print(f"\nrouter writes in the second run: {writes}")
    return 1 if first.failed or second.failed or second.plan or writes else 0
