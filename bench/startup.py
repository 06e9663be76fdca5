"""Process start-up: `--help` of the CLI, bare interpreter start, the heaviest imports."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def timed(argv: list[str], times: int, env: Mapping[str, str] | None = None) -> list[float]:
    values = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        values.append(time.perf_counter() - started)
    return values


def measure_help(python: str, job_root: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(job_root)}
    script = Path(python).parent / "router-policy-sync"
    entry = [str(script)] if script.exists() else [python, "-m", "sync_job"]
    helps = timed([*entry, "--help"], 9, env)
    sync_helps = timed([*entry, "sync", "--help"], 9, env)
    bare = timed([python, "-c", "pass"], 9, env)
    kube = timed([python, "-c", "import kubernetes.config, httpx"], 5, env)
    trace = subprocess.run(
        [python, "-X", "importtime", "-m", "sync_job", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stderr
    imports = []
    for line in trace.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            imports.append((int(parts[1]), parts[2].rstrip()))
    top = [
        f"{us / 1000:6.1f} ms {name.strip()}"
        for us, name in sorted(imports, reverse=True)
        if name.startswith(" ") and not name.startswith("  ")
    ][:8]
    shim = shutil.which("router-policy-sync")
    return {
        "command": " ".join([*entry, "--help"]),
        "help_s": statistics.median(helps),
        "help_s_all": [round(v, 3) for v in helps],
        "sync_help_s": statistics.median(sync_helps),
        "python_start_s": statistics.median(bare),
        "import_kubernetes_httpx_s": statistics.median(kube),
        "top_imports_of_help": top,
        "path_shim": shim if shim and Path(shim).resolve() != script.resolve() else None,
    }
