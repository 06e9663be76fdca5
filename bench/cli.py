"""The command line: `python -m bench [--scales 0.1,1,3] [--runs 3] [--source ...] [--report FILE]`.

Parses the options, picks the cluster source, measures `--help` and every scale inside one
`Workspace`, then hands the document to `report` (which judges the targets and writes the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import bench
from bench.cluster import control_plane_available
from bench.common import REPO, say
from bench.passes import measure_scale
from bench.report import machine, report
from bench.runner import Workspace
from bench.startup import measure_help


def floor_text() -> str:
    """The package docstring's floor paragraph, on one line (the JSON file's `floor`)."""
    doc = bench.__doc__ or ""
    return "The floor " + " ".join(doc.split("The floor ")[1].split("\n\n")[0].split())


def extrapolate(results: list[dict[str, Any]]) -> None:
    """A first run skipped at a latency is estimated from the smallest scale that ran it."""
    from bench.latency import estimate

    for res in results:
        for first in res.get("latency", {}).get("first", []):
            if not first.get("skipped"):
                continue
            measured = [
                {**f, "factor": other["factor"]}
                for other in results
                for f in other.get("latency", {}).get("first", [])
                if f["latency_ms"] == first["latency_ms"] and not f.get("skipped")
            ]
            if measured:
                first["estimate"] = estimate(measured[0], first["objects"], first["latency_ms"])


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(bench.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--scales", default="0.1,1,3", help="scale factors of S (default 0.1,1,3)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per run kind (median)")
    parser.add_argument(
        "--source",
        choices=("auto", "apiserver", "snapshot"),
        default="auto",
        help="the cluster: the e2e kube-apiserver, a --from-file YAML snapshot, or auto",
    )
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument(
        "--job-root",
        type=Path,
        default=REPO,
        help="tree whose sync_job the measured CLI runs (default: this repository)",
    )
    parser.add_argument(
        "--latencies", default="0,20,100",
        help="router latencies in ms for the first-run and small-change passes ('' for none)",
    )  # fmt: skip
    parser.add_argument(
        "--first-run-budget", type=float, default=100.0,
        help="run a first run at a latency only when objects × latency ≤ this many seconds "
        "(else it is extrapolated from the smallest scale measured at that latency)",
    )  # fmt: skip
    parser.add_argument(
        "--foreign-rss", default="1",
        help="scale factors at which to compare peak RSS with no foreign rows and with the S×3 "
        "seed ('' for none)",
    )  # fmt: skip
    parser.add_argument("--python", default=sys.executable, help="interpreter of the job")
    parser.add_argument("--profile", type=Path, help="write a cProfile of a no-op run per scale")
    parser.add_argument(
        "--report",
        type=Path,
        help="only re-print (and re-judge) the results in this JSON file of an earlier run",
    )
    args = parser.parse_args()
    if args.report is not None:
        return report(json.loads(args.report.read_text()), args.report)
    scales = [float(s) for s in args.scales.split(",")]
    speed = {
        "latencies": [int(ms) for ms in args.latencies.split(",") if ms.strip()],
        "budget_s": args.first_run_budget,
        "foreign_rss_factors": [float(x) for x in args.foreign_rss.split(",") if x.strip()],
    }
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    source, why = args.source, None
    if source in ("auto", "apiserver"):
        why = control_plane_available()
        if why is not None and source == "apiserver":
            raise SystemExit(f"control plane unavailable: {why}")
        source = "snapshot" if why else "apiserver"
    if why:
        say(f"control plane unavailable ({why}); using the --from-file snapshot source")
    say(f"job: {args.python} -m sync_job from {args.job_root}; source: {source}")
    job_root = args.job_root.resolve()
    with Workspace() as workspace:  # the launcher first: before the bench process grows
        helpinfo = measure_help(args.python, job_root)
        results = [
            measure_scale(
                f, source, args.runs, args.python, job_root, args.profile, workspace, speed
            )
            for f in scales
        ]
    extrapolate(results)
    document = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
        "machine": machine(),
        "source": source if not why else f"snapshot (control plane unavailable: {why})",
        "floor": floor_text(),
        "help": helpinfo,
        "results": results,
    }
    return report(document, args.json)
