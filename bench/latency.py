"""Passes at a real router's speed, and memory against the router's foreign rows.

Latency: the emulator answers every request after `latency` seconds, one request at a time
(`RouterOSEmulator.latency`, the speed model of RouterOS's web service). Per latency:

- first run: from the seeded router and no RouterPolicies, the job is run again and again until
  every policy is on the router; after each run the router is checked to hold only whole
  policies (each policy's objects all there or none, at most one partly: the one the deadline
  cut). `fewest_runs` is what the router deadline allows at best: ceil(writes × latency /
  deadline). A first run whose writes × latency would exceed `--first-run-budget` seconds is not
  run at that scale (it is measured at S/10 and extrapolated: `estimate`);
- small change: on the converged router, the bench's small change, once.

Each pass's wall time is compared with its floor: (router writes + reads) × latency plus the
fresh-process read floor of the scale (`floor.process_wall_s`, the reads at 0 ms).

Foreign rows: at one scale, the first run and the no-op on a router holding only the marker and
on one holding 150,000 foreign address-list entries, 9,000 foreign filter rules and 1,500
foreign NAT rules (the S×3 seed), same cluster; their peak RSS are compared.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from bench.common import PREFIX, say
from bench.passes import reset_first, small_change
from bench.router import BenchEmulator, seed_router
from bench.runner import Target, run_job
from bench.scenario import Scenario
from sync_job.router.client import RouterSettings
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table
from sync_job.testing.emulator import FILTER, TABLES

DEADLINE_S = RouterSettings("", "", "").deadline
OWN = Ownership(PREFIX)


def expected_objects(sc: Scenario) -> dict[str, int]:
    """Objects per policy: one entry per source, a filter rule per protocol, a NAT rule per
    port (the small changes add sources, so this is read from the cluster as it is now)."""
    wanted = {}
    for i, policy in enumerate(sc.objects["policies"]):
        sources = len(policy["spec"]["ingress"][0]["fromCIDR"])
        ports = sc.objects["lb_services"][i]["spec"]["ports"]
        protocols = {p.get("protocol", "TCP") for p in ports}
        wanted[policy["metadata"]["name"]] = sources + len(protocols) + len(ports)
    return wanted


def whole_policies(router: BenchEmulator, sc: Scenario) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for table in Table:
        for row in router.rows(table.value):
            policy = OWN.owner_policy(table, row)
            if policy is not None:
                counts[policy] += 1
    wanted = expected_objects(sc)
    partial = sorted(p for p, n in wanted.items() if counts[p] not in (0, n))
    return {
        "complete": sum(counts[p] == n for p, n in wanted.items()),
        "untouched": sum(counts[p] == 0 for p in wanted),
        "partial": partial,
    }


def converge(target: Target, sc: Scenario, latency_ms: int, max_runs: int) -> dict[str, Any]:
    target.router.latency = latency_ms / 1000
    runs: list[dict[str, Any]] = []
    for _ in range(max_runs):
        run = run_job(target, check=False, allowed=(0, 1))
        state = whole_policies(target.router, sc)
        runs.append({
            "exit": run["exit"], "wall_s": round(run["wall_s"], 2),
            "peak_rss_mb": round(run["peak_rss_mb"], 1), "writes": run["router"]["writes"],
            "reads": run["router"]["reads"], **state,
        })  # fmt: skip
        say(f"{sc.name} first run at {latency_ms} ms, run {len(runs)}: {runs[-1]}")
        if state["complete"] == sc.policies:
            break
    writes = sum(r["writes"] for r in runs)
    reads = sum(r["reads"] for r in runs)
    return {
        "latency_ms": latency_ms,
        "runs": runs,
        "converged": runs[-1]["complete"] == sc.policies,
        "runs_needed": len(runs),
        "fewest_runs": max(1, math.ceil(writes * latency_ms / 1000 / DEADLINE_S)),
        "only_whole_policies": all(len(r["partial"]) <= 1 for r in runs),
        "wall_s": round(sum(r["wall_s"] for r in runs), 2),
        "writes": writes,
        "reads": reads,
        "router_floor_s": round((writes + reads) * latency_ms / 1000, 2),
    }


def latency_passes(
    target: Target, sc: Scenario, latencies: list[int], budget_s: float, process_floor_s: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"deadline_s": DEADLINE_S, "first": [], "small change": []}
    objects = sum(expected_objects(sc).values())
    for latency_ms in latencies:
        reset_first(target)
        if objects * latency_ms / 1000 <= budget_s:
            first = converge(target, sc, latency_ms, max_runs=12)
            first["floor_s"] = round(first["router_floor_s"] + first["runs_needed"] *
                                     process_floor_s, 2)  # fmt: skip
            out["first"].append(first)
        else:
            out["first"].append({"latency_ms": latency_ms, "skipped": True, "objects": objects})
            target.router.latency = 0.0
            converge(target, sc, 0, max_runs=1)
        expected = small_change(target, sc, 100 + latency_ms)
        target.router.latency = latency_ms / 1000
        run = run_job(target, check=False)
        target.router.latency = 0.0
        got = {m: n for m, n in run["router"]["by_method"].items() if m != "GET"}
        floor = (run["router"]["writes"] + run["router"]["reads"]) * latency_ms / 1000
        out["small change"].append({
            "latency_ms": latency_ms, "wall_s": round(run["wall_s"], 2),
            "writes": run["router"]["writes"], "reads": run["router"]["reads"],
            "expected_writes": expected, "writes_by_method": got,
            "floor_s": round(floor + process_floor_s, 2),
        })  # fmt: skip
        say(f"{sc.name} small change at {latency_ms} ms: {out['small change'][-1]}")
    target.router.latency = 0.0
    return out


def seed_marker_only(router: BenchEmulator) -> None:
    router.seed(FILTER, {"chain": "forward", "action": "passthrough", "disabled": "true",
                         "comment": f"{PREFIX}::marker"})  # fmt: skip


def foreign_rss(target: Target, sc: Scenario) -> dict[str, Any]:
    """Peak RSS of the first run and the no-op, with no foreign rows and with the S×3 seed."""
    original = target.router.seeded
    out: dict[str, Any] = {}
    for name, seed in (("none", seed_marker_only), ("S×3 seed", lambda r: seed_router(r, 3.0))):
        # seeded through the bench's own emulator, whose ids never repeat
        target.router.restore({table: [] for table in TABLES})
        seed(target.router)
        target.router.save_seed()
        reset_first(target)
        rows = {t: len(rows) for t, rows in (target.router.seeded or {}).items() if rows}
        first = run_job(target, check=False)
        noop = run_job(target, check=False)
        out[name] = {
            "router_rows": rows,
            "first_peak_rss_mb": round(first["peak_rss_mb"], 1),
            "noop_peak_rss_mb": round(noop["peak_rss_mb"], 1),
            "first_wall_s": round(first["wall_s"], 2),
            "noop_wall_s": round(noop["wall_s"], 2),
        }
        say(f"{sc.name} foreign rows {name}: {out[name]}")
    target.router.seeded = original
    reset_first(target)
    run_job(target, check=False)  # back to converged, as the phases left it
    return out


def estimate(measured: dict[str, Any], sc_writes: int, latency_ms: int) -> dict[str, Any]:
    """A first run at a scale not run at this latency, from the time per write measured at a
    smaller one: runs = ceil(writes × time per write / usable time per run)."""
    runs = measured["runs"]
    per_write = (sum(r["wall_s"] for r in runs) - 0.0) / max(1, measured["writes"])
    usable = DEADLINE_S * 0.95
    return {
        "latency_ms": latency_ms,
        "from_factor_measured": measured.get("factor"),
        "seconds_per_write_measured": round(per_write, 4),
        "writes": sc_writes,
        "estimated_runs": max(1, math.ceil(sc_writes * per_write / usable)),
        "fewest_runs": max(1, math.ceil(sc_writes * latency_ms / 1000 / DEADLINE_S)),
    }
