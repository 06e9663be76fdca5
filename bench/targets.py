"""The PASS/FAIL targets judged on the measured results (recomputed by `--report`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RSS_LIMIT_MB = 150.0
HELP_LIMIT_S = 0.3
WALL_RATIO = 1.3
FOREIGN_RSS_MB = 10.0  # peak RSS with the S×3 foreign rows may exceed that with none by this
LINEAR_SLACK = 1.25  # S×3 may exceed the S/10-S line by this factor (noise), no more


def speed(res: dict[str, Any], add: Any) -> None:
    """The targets of the passes at a router's speed and of the foreign-rows RSS."""
    s = res["scale"]
    latency = res.get("latency") or {}
    for first in latency.get("first", []):
        ms = first["latency_ms"]
        if first.get("skipped"):
            continue
        whole = [(r["complete"], r["untouched"], len(r["partial"])) for r in first["runs"]]
        add(
            f"{s} first run at {ms} ms: converges, each run leaving only whole policies",
            first["converged"] and first["only_whole_policies"],
            f"{first['runs_needed']} runs; (complete, untouched, partial) after each: {whole}",
        )
        if ms == 20 and res["factor"] == 1.0:
            add(
                "S first run at 20 ms: the fewest runs the deadline allows",
                first["runs_needed"] <= first["fewest_runs"],
                f"{first['runs_needed']} runs, fewest ceil(writes × latency / deadline) = "
                f"{first['fewest_runs']}",
            )
    for small in latency.get("small change", []):
        add(
            f"{s} small change at {small['latency_ms']} ms: writes = the changed objects only",
            small["writes_by_method"] == small["expected_writes"],
            f"expected {small['expected_writes']}, got {small['writes_by_method']}",
        )
    foreign = res.get("foreign_rss")
    if foreign:
        for key in ("first_peak_rss_mb", "noop_peak_rss_mb"):
            none, many = foreign["none"][key], foreign["S×3 seed"][key]
            add(
                f"{s} {key.split('_')[0]}: peak RSS with 150,000 foreign entries and 9,000 "
                f"foreign rules within {FOREIGN_RSS_MB:g} MB of none",
                many - none <= FOREIGN_RSS_MB,
                f"{many:.1f} MB vs {none:.1f} MB ({many - none:+.1f})",
            )


def verdicts(results: list[dict[str, Any]], helpinfo: Mapping[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append({"target": name, "pass": bool(ok), "detail": detail})

    for res in results:
        s, runs = res["scale"], res["runs"]
        noop, first, small = runs["no-op"], runs["first"], runs["small change"]
        add(
            f"{s} no-op: 0 router writes",
            noop["router"]["writes"] == 0,
            f"{noop['router']['writes']} writes",
        )
        add(
            f"{s} no-op: ≤ 3 router reads",
            noop["router"]["reads"] <= 3,
            f"{noop['router']['reads']} reads",
        )
        for key, what in (("wall_s", "in-process reads"), ("process_wall_s", "fresh process")):
            ratio = noop["wall_s"] / runs["floor"][key]
            add(
                f"{s} no-op: wall ≤ {WALL_RATIO}× floor ({what})",
                ratio <= WALL_RATIO,
                f"{noop['wall_s']:.2f}s / {runs['floor'][key]:.2f}s = {ratio:.2f}×",
            )
        created = first["expected_router_writes"]["PUT"]
        writes = first["all_router_writes"]
        exact = all(
            w.get("PUT", 0) == created and sum(w.values()) - w.get("GET", 0) == created
            for w in writes
        )
        add(
            f"{s} first: one router write per object created",
            exact,
            f"{created} objects; writes per run "
            f"{[sum(w.values()) - w.get('GET', 0) for w in writes]}",
        )
        add(
            f"{s} first: no move requests",
            first["router"]["moves"] == 0,
            f"{first['router']['moves']} moves",
        )
        add(
            f"{s} first: no read per policy (≤ 3 reads + /system/resource + 3 read-backs)",
            first["router"]["reads"] <= 7,
            f"{first['router']['reads']} reads",
        )
        expected = small["expected_router_writes"]
        got = [{m: n for m, n in w.items() if m != "GET"} for w in small["all_router_writes"]]
        add(
            f"{s} small change: router writes = the changed objects only",
            all(g == expected for g in got),
            f"expected {expected}, got {got}",
        )
        if small.get("api"):
            statuses = sum(
                n
                for call, n in small["api"]["by_call"].items()
                if call.startswith("PATCH ") and call.endswith("/status")
            )
            add(
                f"{s} small change: API status writes = changed statuses only (2)",
                statuses == 2,
                f"{statuses} status PATCHes",
            )
        for name, run in runs.items():
            if name.endswith("--check"):
                writes_api = (run["api"] or {}).get("writes", 0)
                add(
                    f"{s} {name}: writes nothing",
                    run["router"]["writes"] == 0 and writes_api == 0,
                    f"router {run['router']['writes']}, API {writes_api}",
                )
        if res["factor"] in (1.0, 3.0):
            peak = max(max(r["peak_rss_mb_all"]) for k, r in runs.items() if k != "floor")
            add(f"{s}: peak RSS ≤ 150 MB (every run)", peak <= RSS_LIMIT_MB, f"{peak:.1f} MB")
        speed(res, add)
    lists = {
        res["scale"]: res["runs"]["no-op"]["api"]["lists"]
        for res in results
        if res["runs"]["no-op"].get("api")
    }
    if lists:
        add("no-op: API lists constant across scales", len(set(lists.values())) == 1, str(lists))
    add(
        f"`router-policy-sync --help` ≤ {HELP_LIMIT_S} s",
        helpinfo["help_s"] <= HELP_LIMIT_S,
        f"{helpinfo['help_s']:.3f} s",
    )
    by_factor = {res["factor"]: res for res in results}
    if {0.1, 1.0, 3.0} <= set(by_factor):
        for run_name in ("first", "no-op", "small change"):
            for key in ("wall_s", "cpu_s", "peak_rss_mb"):
                # the fastest of the runs: the least disturbed by whatever else the machine does
                c = [min(by_factor[x]["runs"][run_name][f"{key}_all"]) for x in (0.1, 1.0, 3.0)]
                low = (c[1] - c[0]) / 0.9  # marginal cost per unit of S, S/10 -> S
                high = (c[2] - c[1]) / 2.0  # and S -> S×3
                line = c[1] + 2.0 * low  # S×3 on the straight line through S/10 and S
                add(
                    f"linear growth: {run_name} {key} (fastest run)",
                    c[2] <= LINEAR_SLACK * line,
                    f"S/10 {c[0]:.3g}, S {c[1]:.3g}, S×3 {c[2]:.3g} (straight line: {line:.3g}); "
                    f"per S: {low:.3g} then {high:.3g}",
                )
    return checks
