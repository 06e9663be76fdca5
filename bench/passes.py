"""The passes of one scale: first run, no-op, small change (each with `--check`) and the floor."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.cluster import Api, control_plane, create_cluster
from bench.common import CCNPS, MERGE, ROUTER_POLICIES, say
from bench.router import BenchEmulator, seed_router
from bench.runner import Target, Workspace, floor, median_run, run_job
from bench.scenario import Scenario, build_scenario, service_ports, write_snapshot
from sync_job.testing.emulator import ADDRESS_LIST, FILTER, NAT


def small_change(target: Target, sc: Scenario, repetition: int) -> dict[str, int]:
    """One policy gains a source IP, another policy's Service changes a port (443 -> 9443+r)."""
    i, j = repetition % sc.policies, (sc.policies - 1 - repetition) % sc.policies
    added = str(ipaddress.IPv4Address("12.0.0.1") + repetition)
    policy = sc.objects["policies"][i]
    rule = policy["spec"]["ingress"][0]
    rule["fromCIDR"] = [*rule["fromCIDR"], f"{added}/32"]
    service = sc.objects["lb_services"][j]
    port = 9443 + repetition
    service["spec"]["ports"] = service_ports((("TCP", 80), ("TCP", port), ("UDP", 53)))
    # the pods still listen on 443, so the policy's toPorts 443 still allows the moved port
    service["spec"]["ports"][1]["targetPort"] = 443
    if target.kube is not None:
        target.kube.call(
            "PATCH", f"{CCNPS}/{policy['metadata']['name']}", {"spec": policy["spec"]}, MERGE
        )
        meta = service["metadata"]
        target.kube.call(
            "PATCH",
            f"/api/v1/namespaces/{meta['namespace']}/services/{meta['name']}",
            {"spec": {"ports": service["spec"]["ports"]}},
            MERGE,
        )
    else:
        assert target.snapshot is not None
        write_snapshot(sc, target.snapshot)
    # address-list PUT; filter PATCH (dst-port); NAT DELETE (443) and PUT (the new port)
    return {"PUT": 2, "PATCH": 1, "DELETE": 1}


def reset_first(target: Target) -> None:
    """Back to the state before the first run: router as seeded, no RouterPolicies."""
    target.router.restore_seed()
    if target.kube is not None:
        target.kube.call("DELETE", ROUTER_POLICIES)
        deadline = time.monotonic() + 60
        while target.kube.call("GET", ROUTER_POLICIES)["items"]:
            if time.monotonic() > deadline:
                raise RuntimeError("RouterPolicies not deleted in 60 s")
            time.sleep(0.2)


def measure_scale(
    f: float,
    source: str,
    runs: int,
    python: str,
    job_root: Path,
    profile_dir: Path | None,
    workspace: Workspace,
    speed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every pass of one scale; `speed` (the latency and foreign-row options, see
    bench/latency.py) adds the passes at a router's speed and the foreign-rows RSS."""
    sc = build_scenario(f)
    router = BenchEmulator()
    seed_router(router, f)
    router.save_seed()
    result: dict[str, Any] = {
        "scale": sc.name,
        "factor": f,
        "scenario": {
            "policies": sc.policies,
            "pods": len(sc.objects["pods"]),
            "services": len(sc.objects["lb_services"]) + len(sc.objects.get("services", [])),
            "namespaces": len(sc.namespaces),
            "router_filter_rules": len(router.rows(FILTER)),
            "router_nat_rules": len(router.rows(NAT)),
            "router_address_list_entries": len(router.rows(ADDRESS_LIST)),
        },
        "source": source,
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="rps-bench-") as tmp, router.serve() as url:
        stack = contextlib.ExitStack()
        with stack:
            if source == "apiserver":
                _, plane = stack.enter_context(control_plane(Path(tmp) / "plane"))
                api = Api(plane.server, plane.base_dir / "pki")
                started = time.monotonic()
                create_cluster(api, sc)
                result["setup_s"] = round(time.monotonic() - started, 1)
                target = Target(
                    api, plane.admin_kubeconfig, None, router, url, python, job_root, workspace
                )
            else:
                snapshot = Path(tmp) / "cluster.yaml"
                write_snapshot(sc, snapshot)
                target = Target(None, None, snapshot, router, url, python, job_root, workspace)
            result["runs"] = run_phases(target, sc, runs, profile_dir)
            if speed and speed["latencies"]:
                from bench.latency import latency_passes

                floor_s = result["runs"]["floor"]["process_wall_s"]
                result["latency"] = latency_passes(
                    target, sc, speed["latencies"], speed["budget_s"], floor_s
                )
            if speed and f in speed["foreign_rss_factors"]:
                from bench.latency import foreign_rss

                result["foreign_rss"] = foreign_rss(target, sc)
    return result


def run_phases(target: Target, sc: Scenario, runs: int, profile_dir: Path | None) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    floors: list[dict[str, Any]] = []
    floor(target)  # warm-up: the first kubernetes client loads more modules

    def repeat(name: str, prepare: Callable[[int], dict[str, int] | None]) -> None:
        checks, syncs, expected = [], [], None
        for r in range(runs):
            expected = prepare(r)
            floors.append(floor(target))
            checks.append(run_job(target, check=True))
            syncs.append(run_job(target, check=False))
            say(
                f"{sc.name} {name} #{r + 1}: sync {syncs[-1]['wall_s']:.2f}s "
                f"check {checks[-1]['wall_s']:.2f}s floor {floors[-1]['wall_s']:.2f}s"
            )
        phases[f"{name} --check"] = median_run(checks)
        phases[name] = median_run(syncs)
        phases[name]["all_router_writes"] = [s["router"]["by_method"] for s in syncs]
        if target.kube is not None:
            phases[name]["all_api_writes"] = [s["api"]["writes"] for s in syncs]
        if expected is not None:
            phases[name]["expected_router_writes"] = expected

    def first(r: int) -> dict[str, int]:
        if r:
            reset_first(target)
        return {"PUT": sc.policies * (10 + 2 + 3)}

    repeat("first", first)
    repeat("no-op", lambda r: None)
    repeat("small change", lambda r: small_change(target, sc, r))
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        path = profile_dir / f"noop-{sc.name.replace('/', '_').replace('×', 'x')}.prof"
        run_job(target, check=False, profile=path)
        text = io.StringIO()
        pstats.Stats(str(path), stream=text).sort_stats("cumulative").print_stats(30)
        (path.with_suffix(".txt")).write_text(text.getvalue())
        say(f"profile of a no-op run: {path} (top 30 by cumulative time in {path.stem}.txt)")
    phases["floor"] = {"bytes_read": floors[-1]["bytes_read"]}
    for key in ("wall_s", "process_wall_s", "process_cpu_s", "process_peak_rss_mb"):
        phases["floor"][key] = statistics.median(f[key] for f in floors)
        phases["floor"][f"{key}_all"] = [round(f[key], 3) for f in floors]
    return phases
