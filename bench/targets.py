"""The PASS/FAIL targets judged on the measured results (recomputed by `--report`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RSS_LIMIT_MB = 150.0
HELP_LIMIT_S = 0.3
WALL_RATIO = 1.5
LINEAR_SLACK = 1.25  # S×3 may exceed the S/10-S line by this factor (noise), no more


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
        if res["factor"] == 1.0:
            peak = max(max(r["peak_rss_mb_all"]) for k, r in runs.items() if k != "floor")
            add("S: peak RSS ≤ 150 MB (every run)", peak <= RSS_LIMIT_MB, f"{peak:.1f} MB")
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
