"""The API server side: the e2e control plane, scenario setup by raw admin calls, API counts."""

from __future__ import annotations

import contextlib
import importlib
import json
import ssl
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import CCNPS, MERGE, REPO, say
from bench.scenario import Scenario, lb_ip, pod_status

CRDS = (
    REPO / "manifests" / "base" / "crd-routerpolicies.yaml",  # as tests/e2e/conftest.py
    REPO / "tests" / "fixtures" / "cilium" / "crds" / "ciliumclusterwidenetworkpolicies.yaml",
)


class Api:
    """Raw admin access for setting the scenario up (never used while a pass runs)."""

    def __init__(self, server: str, pki: Path) -> None:
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self.http = httpx.Client(base_url=server, verify=context, limits=limits, timeout=120)

    def call(self, method: str, path: str, body: Any = None, content_type: str = "") -> Any:
        headers = {"Content-Type": content_type or "application/json"}
        response = self.http.request(method, path, json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def many(self, calls: list[tuple[str, str, Any, str]], what: str, workers: int = 8) -> None:
        started = time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda c: self.call(*c), calls))
        rate = len(calls) / max(time.monotonic() - started, 1e-9)
        say(f"  {len(calls)} {what} ({rate:.0f}/s)")


API_COLLECTIONS = (
    "pods",
    "services",
    "namespaces",
    "ciliumclusterwidenetworkpolicies",
    "routerpolicies",
    "events",
    "leases",
)


def api_counts(path: Path) -> dict[str, Any]:
    """The job's API requests (written by bench/api_counter.py at exit) by verb and by call."""
    counted = json.loads(path.read_text())
    by_verb: Counter[str] = Counter()
    by_call: Counter[str] = Counter()
    for call, n in counted["requests"].items():
        method, _, url = call.partition(" ")
        resource = url.rstrip("/").rsplit("/", 1)[-1]
        verb = "LIST" if method == "GET" and resource in API_COLLECTIONS else method
        by_verb[verb] += n
        by_call[f"{verb} {url}"] += n
    return {
        "by_verb": dict(sorted(by_verb.items())),
        "by_call": dict(sorted(by_call.items())),
        "lists": by_verb["LIST"],
        "writes": sum(n for v, n in by_verb.items() if v not in ("LIST", "GET")),
        "bytes_read_by_job": counted["reply_bytes"],
    }


def create_cluster(api: Api, sc: Scenario) -> None:
    say(f"{sc.name}: creating {sc.pods} pods, {sc.services} Services, {sc.policies} policies")
    api.call(
        "POST",
        "/apis/networking.k8s.io/v1/servicecidrs",
        {"metadata": {"name": "bench"}, "spec": {"cidrs": ["10.96.0.0/16"]}},
    )
    api.many([("POST", "/api/v1/namespaces", ns, "") for ns in sc.objects["namespaces"]], "ns")
    pods = sc.objects["pods"]
    ns_path = "/api/v1/namespaces"
    api.many(
        [("POST", f"{ns_path}/{p['metadata']['namespace']}/pods", p, "") for p in pods], "pods"
    )
    api.many(
        [
            (
                "PATCH",
                f"{ns_path}/{p['metadata']['namespace']}/pods/{p['metadata']['name']}/status",
                pod_status(p, n),
                MERGE,
            )
            for n, p in enumerate(pods)
        ],
        "pod statuses",
    )
    services = sc.objects["lb_services"] + sc.objects.get("services", [])
    api.many(
        [("POST", f"{ns_path}/{s['metadata']['namespace']}/services", s, "") for s in services],
        "Services",
    )
    api.many(
        [
            (
                "PATCH",
                f"{ns_path}/{s['metadata']['namespace']}/services/{s['metadata']['name']}/status",
                {"status": {"loadBalancer": {"ingress": [{"ip": lb_ip(i)}]}}},
                MERGE,
            )
            for i, s in enumerate(sc.objects["lb_services"])
        ],
        "LoadBalancer IPs",
    )
    api.many([("POST", CCNPS, p, "") for p in sc.objects["policies"]], "policies")


@contextlib.contextmanager
def control_plane(workdir: Path) -> Iterator[tuple[Any, Any]]:
    sys.path.insert(0, str(REPO / "tests"))
    plane_module = importlib.import_module("controlplane.plane")
    plane = plane_module.start(plane_module.find_binaries(), workdir, CRDS)
    try:
        yield plane_module, plane
    finally:
        plane_module.stop(plane)


def control_plane_available() -> str | None:
    """None when the e2e control plane can run here, else why not."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        plane_module = importlib.import_module("controlplane.plane")
        plane_module.find_binaries()
    except Exception as error:  # ImportError, ControlPlaneUnavailable
        return f"{type(error).__name__}: {error}"
    return None
