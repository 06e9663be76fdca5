"""One measured pass: the real CLI in a subprocess started by a small launcher; the floor."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import Api, api_counts
from bench.common import PASSWORD, REPO
from bench.floor import reads as floor_reads
from bench.router import BenchEmulator
from sync_job.router.client import PROPLISTS

FLOOR_SCRIPT = Path(__file__).resolve().with_name("floor.py")


LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(job["argv"], stdout=out, stderr=err, env=job["env"],
                                   cwd=job["cwd"])
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    print(json.dumps({"exit": process.returncode, "wall_s": wall,
                      "cpu_s": usage.ru_utime + usage.ru_stime,
                      "peak_rss_mb": usage.ru_maxrss / 1024}), flush=True)
"""


class Launcher:
    """Starts the measured passes from a small helper process started before anything big.

    Linux carries a process's peak RSS across fork and exec, so a pass forked from this process
    (which holds the emulator's tables and the scenario) would report this process's peak as its
    own; the helper's children inherit only the helper's few megabytes.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with tempfile.TemporaryDirectory(prefix="rps-job-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            job = {"argv": argv, "env": dict(env), "cwd": str(cwd)}
            self.process.stdin.write(json.dumps({**job, "stdout": str(out), "stderr": str(err)}))
            self.process.stdin.write("\n")
            self.process.stdin.flush()
            result: dict[str, Any] = json.loads(self.process.stdout.readline())
            result["stdout"] = out.read_text(errors="replace")
            result["stderr"] = err.read_text(errors="replace")
        return result

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


API_COUNTER = Path(__file__).resolve().with_name("api_counter.py")


class Workspace:
    """The scratch directory and the launcher of one bench run, from `with Workspace()` to its end.

    The directory holds `hook/sitecustomize.py` (bench/api_counter.py, put on a measured job's
    PYTHONPATH) and the API count files the jobs write; the launcher is started here, before the
    bench process grows (see `Launcher`).
    """

    def __init__(self) -> None:
        self.launcher = Launcher()
        self.path = Path(tempfile.mkdtemp(prefix="rps-bench-"))
        self.counter_dir = self.path / "hook"
        self.counter_dir.mkdir()
        shutil.copy(API_COUNTER, self.counter_dir / "sitecustomize.py")

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.launcher.close()
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Target:
    """Where a pass runs: the cluster (API server or snapshot), router, job and workspace."""

    kube: Api | None
    kubeconfig: Path | None
    snapshot: Path | None
    router: BenchEmulator
    router_url: str
    python: str
    job_root: Path
    workspace: Workspace


def run_job(
    target: Target,
    *,
    check: bool,
    profile: Path | None = None,
    allowed: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """One pass of the real CLI in a subprocess, with its requests, bytes, wall, CPU and RSS;
    an exit code not in `allowed` (default: 0, and 2 with `check`) raises."""
    argv = [target.python]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    argv += ["-m", "sync_job", "sync", "--mikrotik-base-url", target.router_url, "--no-lease"]
    if target.snapshot is not None:
        argv += ["--from-file", str(target.snapshot)]
    else:
        argv += ["--kubeconfig", str(target.kubeconfig)]
    if check:
        argv.append("--check")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "MIKROTIK_"))}
    counts = target.workspace.path / f"api-counts-{uuid.uuid4().hex}.json"
    env |= {"MIKROTIK_PASSWORD": PASSWORD, "PYTHONPATH": str(target.job_root)}
    env["MIKROTIK_ALLOW_PLAIN_HTTP"] = "1"  # the emulator on 127.0.0.1 speaks plain HTTP
    if target.kube is not None:
        env["PYTHONPATH"] += os.pathsep + str(target.workspace.counter_dir)
        env["RPS_BENCH_API_COUNTS"] = str(counts)
    target.router.reset_counts()
    done = target.workspace.launcher.run(argv, env, target.job_root)
    expected = allowed or ((0, 2) if check else (0,))
    if done["exit"] not in expected:
        raise RuntimeError(f"{' '.join(argv)} exited {done['exit']}:\n{done['stderr'][-3000:]}")
    summary = done["stdout"].strip().splitlines()[-1:] or [""]
    return {
        "check": check,
        "exit": done["exit"],
        "wall_s": done["wall_s"],
        "cpu_s": done["cpu_s"],
        "peak_rss_mb": done["peak_rss_mb"],
        "router": target.router.counts(),
        "api": api_counts(counts) if target.kube else None,
        "plan_summary": summary[0],
    }


def floor_spec(target: Target) -> dict[str, Any]:
    return {
        "router_url": target.router_url,
        "password": PASSWORD,
        "proplists": {table.value: proplist for table, proplist in PROPLISTS.items()},
        "kubeconfig": str(target.kubeconfig) if target.kubeconfig else None,
        "snapshot": str(target.snapshot) if target.snapshot else None,
    }


def floor(target: Target) -> dict[str, Any]:
    """The mandatory reads with bare calls (bench/floor.py), in this process and in a fresh one."""
    from kubernetes import config  # noqa: F401  (imported once, outside the in-process timing)

    spec = floor_spec(target)
    inside = floor_reads(spec)
    env = {**os.environ, "PYTHONPATH": ""}
    fresh = target.workspace.launcher.run(
        [target.python, str(FLOOR_SCRIPT), json.dumps(spec)], env, REPO
    )
    if fresh["exit"] != 0:
        raise RuntimeError(f"{FLOOR_SCRIPT} exited {fresh['exit']}: {fresh['stderr'][-2000:]}")
    return {
        "wall_s": inside["wall_s"],
        "bytes_read": inside["bytes_read"],
        "process_wall_s": fresh["wall_s"],
        "process_cpu_s": fresh["cpu_s"],
        "process_peak_rss_mb": fresh["peak_rss_mb"],
    }


def median_run(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample with the median wall time, plus min/median/max of each timing."""
    ordered = sorted(samples, key=lambda s: s["wall_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    for key in ("wall_s", "cpu_s", "peak_rss_mb"):
        values = [s[key] for s in samples]
        chosen[key] = statistics.median(values)
        chosen[f"{key}_all"] = [round(v, 3) for v in values]
    chosen["samples"] = len(samples)
    return chosen
