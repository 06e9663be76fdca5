"""`router-policy-sync demo`: the whole pass on a bundled example, against an in-process emulator.

The emulated router starts with the marker rule and a few foreign rules and entries (the kind a
default MikroTik configuration has), so the demo also shows that those are left alone.
"""

from __future__ import annotations

from importlib.resources import as_file, files

from sync_job.job import one_pass
from sync_job.report import RunReport
from sync_job.testing.emulator import RouterOSEmulator

DEMO_PASSWORD = "demo-password"  # the in-process emulator's own, never a router's
TABLES = ("ip/firewall/filter", "ip/firewall/nat", "ip/firewall/address-list")


def demo_router() -> RouterOSEmulator:
    router = RouterOSEmulator("admin", DEMO_PASSWORD)
    filter_table, nat_table, list_table = TABLES
    router.seed(filter_table, {"chain": "input", "action": "accept",
                               "connection-state": "established,related",
                               "comment": "defconf: accept established,related"})  # fmt: skip
    router.seed(filter_table, {"chain": "forward", "action": "accept",
                               "connection-state": "established,related"})  # fmt: skip
    router.seed(filter_table, {"chain": "forward", "action": "passthrough", "disabled": "yes",
                               "comment": "router-policy-sync::marker"})  # fmt: skip
    router.seed(filter_table, {"chain": "forward", "action": "drop", "in-interface-list": "WAN",
                               "comment": "defconf: drop all from WAN"})  # fmt: skip
    router.seed(nat_table, {"chain": "srcnat", "action": "masquerade",
                                  "out-interface-list": "WAN",
                                  "comment": "defconf: masquerade"})  # fmt: skip
    router.seed(list_table, {"list": "blocklist", "address": "192.0.2.66"})
    return router


def _print_tables(router: RouterOSEmulator) -> None:
    for table in TABLES:
        print(f"/{table}:")
        for row in router.rows(table):
            shown = {k: v for k, v in row.items() if k not in ("bytes", "packets", "invalid")}
            print("  " + " ".join(f"{k}={v}" for k, v in shown.items()))
    print()


def _pass(router: RouterOSEmulator, output: str) -> RunReport:
    with as_file(files("sync_job") / "examples" / "demo.yaml") as example:
        return one_pass(
            example, "https://router.demo.invalid/rest", DEMO_PASSWORD, router.transport(), output
        )


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
