"""Output: the results table, the machine, the JSON file and the target verdicts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench.targets import verdicts


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| scale | run | router GET/PUT/PATCH/DELETE/POST | API LIST/POST/PATCH/DELETE "
        "| MB read router / API | wall s | CPU s | peak RSS MB | wall / floor | "
        "wall / floor+start |"
    )
    lines = [head, "|" + "---|" * 10]
    for res in results:
        runs = res["runs"]
        fl = runs["floor"]
        for name, run in runs.items():
            if name == "floor":
                continue
            m = run["router"]["by_method"]
            router = "/".join(str(m.get(k, 0)) for k in ("GET", "PUT", "PATCH", "DELETE", "POST"))
            if run.get("api"):
                v = run["api"]["by_verb"]
                api = "/".join(str(v.get(k, 0)) for k in ("LIST", "POST", "PATCH", "DELETE"))
                api_mb = _mb(run["api"]["bytes_read_by_job"])
            else:
                api, api_mb = "n/a (file)", "n/a"
            lines.append(
                f"| {res['scale']} | {name} | {router} | {api} "
                f"| {_mb(run['router']['bytes_read_by_job'])} / {api_mb} "
                f"| {run['wall_s']:.2f} | {run['cpu_s']:.2f} | {run['peak_rss_mb']:.0f} "
                f"| {run['wall_s'] / fl['wall_s']:.2f} "
                f"| {run['wall_s'] / fl['process_wall_s']:.2f} |"
            )
        lines.append(
            f"| {res['scale']} | *floor* | 3/0/0/0/0 | 5/0/0/0 | {_mb(fl['bytes_read'])} (all) "
            f"| {fl['wall_s']:.2f} in-process, {fl['process_wall_s']:.2f} fresh process "
            f"| {fl['process_cpu_s']:.2f} | {fl['process_peak_rss_mb']:.0f} | 1 | 1 |"
        )
    return "\n".join(lines)


def speed_table(results: list[dict[str, Any]]) -> str:
    """The passes at a router's speed: wall time against (writes + reads) × latency + reads."""
    lines = [
        "| scale | pass | latency ms | runs (fewest) | router writes / reads | wall s "
        "| floor s | wall / floor | only whole policies |",
        "|" + "---|" * 9,
    ]
    for res in results:
        latency = res.get("latency") or {}
        for first in latency.get("first", []):
            ms = first["latency_ms"]
            if first.get("skipped"):
                est = first.get("estimate") or {}
                lines.append(
                    f"| {res['scale']} | first run | {ms} | est. {est.get('estimated_runs', '?')} "
                    f"({est.get('fewest_runs', '?')}) | {first['objects']} / – | not run: "
                    f"extrapolated from S×{est.get('from_factor_measured', '?')} at "
                    f"{est.get('seconds_per_write_measured', '?')} s/write | – | – | – |"
                )
                continue
            lines.append(
                f"| {res['scale']} | first run | {ms} | {first['runs_needed']} "
                f"({first['fewest_runs']}) | {first['writes']} / {first['reads']} "
                f"| {first['wall_s']:.1f} | {first['floor_s']:.1f} "
                f"| {first['wall_s'] / first['floor_s']:.2f} "
                f"| {'yes' if first['only_whole_policies'] else 'NO'} |"
            )
        for small in latency.get("small change", []):
            lines.append(
                f"| {res['scale']} | small change | {small['latency_ms']} | 1 "
                f"| {small['writes']} / {small['reads']} | {small['wall_s']:.2f} "
                f"| {small['floor_s']:.2f} | {small['wall_s'] / small['floor_s']:.2f} | – |"
            )
    foreign = [
        f"| {res['scale']} | {name} | {v['router_rows']} | {v['first_peak_rss_mb']} "
        f"| {v['noop_peak_rss_mb']} |"
        for res in results
        for name, v in (res.get("foreign_rss") or {}).items()
    ]
    if foreign:
        lines += ["", "| scale | foreign rows | router rows | first run peak RSS MB "
                  "| no-op peak RSS MB |", "|---|---|---|---|---|", *foreign]  # fmt: skip
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        total = Path("/proc/meminfo").read_text().split()[1]
        info["memory_gib"] = round(int(total) / 2**20, 1)
    return info


def report(document: dict[str, Any], path: Path) -> int:
    """(Re)compute the verdicts, write the JSON file, print the tables."""
    document["targets"] = checks = verdicts(document["results"], document["help"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    info, helpinfo = document["machine"], document["help"]
    print(
        f"machine: {info.get('cpu', '?')}, {info['cpus']} CPUs, {info.get('memory_gib')} GiB, "
        f"Python {info['python']}; cluster source: {document['source']}"
    )
    print(f"command: {document['command']}\n")
    print(table(document["results"]))
    print()
    print(speed_table(document["results"]))
    print(
        f"\n`--help`: {helpinfo['help_s']:.3f} s ({helpinfo['command']}); python start "
        f"{helpinfo['python_start_s']:.3f} s; `import kubernetes.config, httpx` "
        f"{helpinfo['import_kubernetes_httpx_s']:.3f} s"
    )
    print("\n| target | result | detail |\n|---|---|---|")
    for check in checks:
        print(f"| {check['target']} | {'PASS' if check['pass'] else 'FAIL'} | {check['detail']} |")
    print(f"\nJSON: {path}")
    return 0
