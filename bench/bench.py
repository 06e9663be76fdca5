"""Benchmark of one `router-policy-sync sync` pass: scenario S at S/10, S and S×3.

Scenario S (scaled by `f`): 300 annotated CiliumClusterwideNetworkPolicies, each with 10 /32
sources, 4 pods and a LoadBalancer Service on tcp 80, tcp 443 and udp 53; 3,000 pods and 600
Services in all (the rest are other workloads: 100 LoadBalancer and 200 ClusterIP Services with 6
pods each); a router holding 3,000 foreign filter rules, 500 foreign NAT rules, 50,000 foreign
address-list entries and the marker. Pods look like kubelet-managed pods (owner reference, probes,
projected token volume, Running status with container statuses), so list sizes are realistic.

Every measured pass is the real CLI in a subprocess (`python -m sync_job sync --no-lease ...`),
against the RouterOS emulator served by this process on 127.0.0.1 and a real kube-apiserver +
etcd (tests/controlplane/plane.py) on 127.0.0.1, or, when that cannot start or with
`--source snapshot`, against a YAML snapshot (`--from-file`). Per pass:

- router requests by method and router bytes: counted by the emulator (`BenchEmulator.handle`);
- API requests by verb and API bytes: counted inside the job process by a `sitecustomize` module
  the bench puts on the job's PYTHONPATH (bench/api_counter.py), which wraps urllib3, the
  kubernetes client's HTTP library: every request by method and path, and every reply body's
  bytes. The command line is the real CLI; a GET of a collection counts as a LIST. (The
  apiserver's own `apiserver_request_total` metric cannot be used: its background repair loops
  list Services too, and it does not say which client asked.)
- wall time, CPU time (user+sys) and peak RSS of the job process, from `os.wait4` in a small
  helper process (`Launcher`: Linux carries the parent's peak RSS across fork and exec).

Each kind of pass is repeated `--runs` times (the first run after resetting the router and
deleting the RouterPolicies) and the median is reported. The router writes of the first run are
checked against the objects created (15 per policy), those of the small change (one policy gains
a source, another policy's Service moves tcp 443 to another port) against the 4 changed objects.

The floor (bench/floor.py) is the least I/O a pass must do, done between passes: the three
router tables with the job's `.proplist` (a fresh httpx client), and the five API lists as raw
`kubernetes` ApiClient calls (a fresh client from the kubeconfig) asking for no more than a pass
needs: full CiliumClusterwideNetworkPolicies, RouterPolicies and Services, pods and namespaces as
metadata only (`as=PartialObjectMetadataList`, pods with the finished-phase field selector); every
body is parsed with `json.loads`. It is timed twice: in this process (no start-up, the issue's
floor) and as a fresh `python bench/floor.py` process (interpreter start, `import kubernetes,
httpx`, the same reads), since a CLI pass cannot avoid starting a process.

Run `python bench/bench.py --help` for the options; results go to stdout (table) and a JSON file.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import io
import ipaddress
import json
import os
import platform
import pstats
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from floor import reads as floor_reads

from sync_job.router.client import PROPLISTS
from sync_job.testing.emulator import ADDRESS_LIST, FILTER, NAT, RouterOSEmulator, _bad

REPO = Path(__file__).resolve().parents[1]
FLOOR_SCRIPT = Path(__file__).resolve().with_name("floor.py")
WORK = Path(tempfile.mkdtemp(prefix="rps-bench-"))  # sitecustomize.py (API counter), counts
COUNTER_DIR = WORK / "hook"
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
CRDS = (
    REPO / "manifests" / "crd-routerpolicies.yaml",
    REPO / "tests" / "fixtures" / "cilium" / "crds" / "ciliumclusterwidenetworkpolicies.yaml",
)
PASSWORD = "bench-password"
PREFIX = "router-policy-sync"
ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"
GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = f"/apis/{GROUP}/v1/routerpolicies"
CCNPS = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
MERGE = "application/merge-patch+json"
SCALE_NAMES = {0.1: "S/10", 1.0: "S", 3.0: "S×3"}
POLICY_PORTS = (("TCP", 80), ("TCP", 443), ("UDP", 53))
PODS_PER_POLICY = 4
PODS_PER_OTHER = 6
RSS_LIMIT_MB = 150.0
HELP_LIMIT_S = 0.3
WALL_RATIO = 1.5
LINEAR_SLACK = 1.25  # S×3 may exceed the S/10-S line by this factor (noise), no more


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the router: the emulator, counting bytes, with an indexed duplicate check -------------------


class BenchEmulator(RouterOSEmulator):
    """The RouterOS emulator plus byte counters and snapshot/restore, for the bench only.

    Its address-list duplicate check (an O(entries) scan per add in `emulator.py`, which would
    make the emulator, not the job, dominate a first run against 50,000 entries) is replaced by an
    equivalent index; everything else is the emulator's own behaviour.
    """

    def __init__(self) -> None:
        super().__init__("admin", PASSWORD)
        self.bytes_out: Counter[str] = Counter()  # response bodies, by method
        self.bytes_in: Counter[str] = Counter()  # request bodies, by method
        self._dups: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._dups_ok = False
        self._saved: dict[str, list[dict[str, str]]] | None = None

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        authorization: str | None,
    ) -> tuple[int, bytes]:
        status, payload = super().handle(method, path, query, body, authorization)
        with self._lock:
            self.bytes_out[method.upper()] += len(payload)
            self.bytes_in[method.upper()] += len(body)
        return status, payload

    def reset_counts(self) -> None:
        with self._lock:
            super().reset_counts()
            self.bytes_out.clear()
            self.bytes_in.clear()

    # Index maintenance: adds extend it, any other change invalidates it (rebuilt on next use).
    def _store(self, table: str, row: dict[str, str], index: int) -> dict[str, str]:
        stored = super()._store(table, row, index)
        if table == ADDRESS_LIST and self._dups_ok:
            self._dups.setdefault((row.get("list", ""), row.get("address", "")), []).append(row)
        return stored

    def _patch(self, table: str, token: str, data: Mapping[str, object]) -> dict[str, str]:
        self._dups_ok = False
        return super()._patch(table, token, data)

    def _delete(self, table: str, token: str) -> None:
        self._dups_ok = False
        super()._delete(table, token)

    def _remove(self, table: str, data: Mapping[str, object]) -> None:
        self._dups_ok = False
        super()._remove(table, data)

    def _check_duplicate(self, row: dict[str, str]) -> None:
        if row.get("disabled") == "true":
            return
        if not self._dups_ok:
            self._dups = {}
            for other in self._tables[ADDRESS_LIST]:
                key = (other.get("list", ""), other.get("address", ""))
                self._dups.setdefault(key, []).append(other)
            self._dups_ok = True
        for other in self._dups.get((row["list"], row["address"]), ()):
            if other.get(".id") != row.get(".id") and other.get("disabled") != "true":
                raise _bad("failure: already have such entry")

    def save(self) -> None:
        with self._lock:
            self._saved = {t: [dict(r) for r in rows] for t, rows in self._tables.items()}

    def restore(self) -> None:
        assert self._saved is not None
        with self._lock:
            self._tables = {t: [dict(r) for r in rows] for t, rows in self._saved.items()}
            self._dups_ok = False

    def counts(self) -> dict[str, Any]:
        with self._lock:
            by_method: Counter[str] = Counter()
            moves = 0
            for (method, path), n in self.requests.items():
                by_method[method] += n
                if method == "POST" and path.endswith("/move"):
                    moves += n
            return {
                "by_method": dict(sorted(by_method.items())),
                "reads": by_method["GET"],
                "writes": sum(n for m, n in by_method.items() if m != "GET"),
                "moves": moves,
                "bytes_read_by_job": sum(self.bytes_out.values()),
                "bytes_sent_by_job": sum(self.bytes_in.values()),
            }


def seed_router(emulator: BenchEmulator, f: float) -> None:
    """Foreign filter rules around the marker, foreign NAT rules, foreign address-list entries."""
    n_filter, n_nat, n_entries = round(3000 * f), round(500 * f), round(50_000 * f)
    base = int(ipaddress.IPv4Address("100.64.0.0"))
    for i in range(n_filter):
        if i == n_filter - n_filter // 10:  # the marker above the last tenth (the drop rules)
            emulator.seed(
                FILTER,
                {
                    "chain": "forward",
                    "action": "passthrough",
                    "disabled": "true",
                    "comment": f"{PREFIX}::marker",
                },
            )
        emulator.seed(
            FILTER,
            {
                "chain": ("input", "forward")[i % 2],
                "action": ("accept", "drop")[i % 3 == 0],
                "protocol": ("tcp", "udp")[i % 2],
                "dst-port": str(1000 + i % 60000),
                "src-address-list": f"blocklist-{i % 40}",
                "in-interface-list": "WAN",
                "comment": f"user rule {i}",
            },
        )
    for i in range(n_nat):
        emulator.seed(
            NAT,
            {
                "chain": "dstnat",
                "action": "dst-nat",
                "protocol": "tcp",
                "dst-port": str(20000 + i),
                "to-addresses": f"192.168.{i // 250}.{i % 250 + 1}",
                "to-ports": "22",
                "comment": f"user forward {i}",
            },
        )
    for i in range(n_entries):
        emulator.seed(
            ADDRESS_LIST,
            {
                "list": f"blocklist-{i % 40}",
                "address": str(ipaddress.IPv4Address(base + i)),
                "comment": "imported from a public blocklist",
            },
        )


# --- the cluster: scenario objects ---------------------------------------------------------------


@dataclass
class Scenario:
    f: float
    policies: int
    pods: int
    services: int
    namespaces: list[str]
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return SCALE_NAMES.get(self.f, f"S×{self.f:g}")

    def policy_ns(self, i: int) -> str:
        return self.namespaces[i % len(self.namespaces)]


def _sources(i: int, count: int = 10) -> list[str]:
    base = int(ipaddress.IPv4Address("11.0.0.0")) + i * 16
    return [f"{ipaddress.IPv4Address(base + k + 1)}/32" for k in range(count)]


def _ports(ports: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [
        {"name": f"{proto.lower()}-{port}", "protocol": proto, "port": port, "targetPort": port}
        for proto, port in ports
    ]


def _pod(ns: str, app: str, index: int, node: int) -> dict[str, Any]:
    template_hash = f"{abs(hash(app)) % 10**10:010d}"[:10]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-{template_hash}-{index:05d}",
            "namespace": ns,
            "labels": {
                "app": app,
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/part-of": "bench",
                "pod-template-hash": template_hash,
            },
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-{template_hash}",
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{node}",
            "serviceAccountName": app,
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example.com/team/{app}:1.2.3",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": f"SETTING_{k}", "value": f"value-{k}"} for k in range(4)],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 10,
                    },
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}},
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        }
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                    },
                }
            ],
        },
    }


def _pod_status(pod: dict[str, Any], number: int) -> dict[str, Any]:
    stamp = "2025-01-01T00:00:00Z"
    ip = f"10.{128 + number // 65536}.{number // 256 % 256}.{number % 256}"
    host = pod["spec"]["nodeName"].removeprefix("node-")
    conditions = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": stamp}
                for kind in (*conditions, "PodScheduled")
            ],
            "hostIP": f"192.168.100.{host}",
            "hostIPs": [{"ip": f"192.168.100.{host}"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": stamp,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "registry.example.com/team/app@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + uuid.uuid4().hex * 2,
                    "state": {"running": {"startedAt": stamp}},
                }
            ],
        }
    }


def _service(ns: str, app: str, kind: str, ports: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind, "selector": {"app": app}, "ports": _ports(ports)}
    if kind == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = False  # the node-port range would run out
    else:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "namespace": ns, "labels": {"app": app}},
        "spec": spec,
    }


def _policy(name: str, ns: str, app: str, sources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name, "annotations": {ANNOTATION: "true"}},
        "spec": {
            "description": f"internet access to {ns}/{app}",
            "endpointSelector": {
                "matchLabels": {"app": app, "k8s:io.kubernetes.pod.namespace": ns}
            },
            "ingress": [
                {
                    "fromCIDR": sources,
                    "toPorts": [
                        {
                            "ports": [
                                {"port": str(port), "protocol": proto}
                                for proto, port in POLICY_PORTS
                            ]
                        }
                    ],
                }
            ],
        },
    }


def lb_ip(i: int) -> str:
    return f"172.20.{i // 250}.{i % 250 + 1}"


def build_scenario(f: float) -> Scenario:
    policies, pods, services = round(300 * f), round(3000 * f), round(600 * f)
    namespaces = [f"team-{k:02d}" for k in range(max(1, round(10 * f)))]
    sc = Scenario(f, policies, pods, services, namespaces)
    objs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ns in namespaces:
        objs["namespaces"].append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {}}}
        )
    number = 0
    for i in range(policies):
        ns, app = sc.policy_ns(i), f"web-{i:04d}"
        for k in range(PODS_PER_POLICY):
            objs["pods"].append(_pod(ns, app, k, number % 50 + 1))
            number += 1
        objs["lb_services"].append(_service(ns, app, "LoadBalancer", POLICY_PORTS))
        objs["policies"].append(_policy(f"expose-{app}", ns, app, _sources(i)))
    others = services - policies
    for j in range(others):
        ns, app = namespaces[j % len(namespaces)], f"svc-{j:04d}"
        kind = "LoadBalancer" if j < others // 3 else "ClusterIP"
        for k in range(PODS_PER_OTHER):
            if number < pods:
                objs["pods"].append(_pod(ns, app, k, number % 50 + 1))
                number += 1
        target = "lb_services" if kind == "LoadBalancer" else "services"
        objs[target].append(_service(ns, app, kind, (("TCP", 8080),)))
    while number < pods:  # pods of no Service (jobs, daemons)
        ns = namespaces[number % len(namespaces)]
        objs["pods"].append(_pod(ns, f"worker-{number:05d}", 0, number % 50 + 1))
        number += 1
    sc.objects = dict(objs)
    return sc


# --- the API server ------------------------------------------------------------------------------


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
                _pod_status(p, n),
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


def write_snapshot(sc: Scenario, path: Path) -> None:
    """The scenario as `kubectl get -o yaml` would print it (for `--from-file`)."""
    items = []
    for n, pod in enumerate(sc.objects["pods"]):
        items.append({**pod, **_pod_status(pod, n)})
    for i, service in enumerate(sc.objects["lb_services"]):
        ingress = {"status": {"loadBalancer": {"ingress": [{"ip": lb_ip(i)}]}}}
        items.append({**service, **ingress})
    items += sc.objects.get("services", []) + sc.objects["policies"] + sc.objects["namespaces"]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))


# --- running the job -----------------------------------------------------------------------------


@dataclass
class Target:
    kube: Api | None
    kubeconfig: Path | None
    snapshot: Path | None
    router: BenchEmulator
    router_url: str
    python: str
    job_root: Path


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


LAUNCH: list[Launcher] = []


def run_job(target: Target, *, check: bool, profile: Path | None = None) -> dict[str, Any]:
    """One pass of the real CLI in a subprocess, with its requests, bytes, wall, CPU and RSS."""
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
    counts = WORK / f"api-counts-{uuid.uuid4().hex}.json"
    env |= {"MIKROTIK_PASSWORD": PASSWORD, "PYTHONPATH": str(target.job_root)}
    if target.kube is not None:
        env["PYTHONPATH"] += os.pathsep + str(COUNTER_DIR)
        env["RPS_BENCH_API_COUNTS"] = str(counts)
    target.router.reset_counts()
    done = LAUNCH[0].run(argv, env, target.job_root)
    expected = (0, 2) if check else (0,)
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
    fresh = LAUNCH[0].run([target.python, str(FLOOR_SCRIPT), json.dumps(spec)], env, REPO)
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


# --- scenario changes between passes -------------------------------------------------------------


def small_change(target: Target, sc: Scenario, repetition: int) -> dict[str, int]:
    """One policy gains a source IP, another policy's Service changes a port (443 -> 9443+r)."""
    i, j = repetition % sc.policies, (sc.policies - 1 - repetition) % sc.policies
    added = str(ipaddress.IPv4Address("12.0.0.1") + repetition)
    policy = sc.objects["policies"][i]
    rule = policy["spec"]["ingress"][0]
    rule["fromCIDR"] = [*rule["fromCIDR"], f"{added}/32"]
    service = sc.objects["lb_services"][j]
    port = 9443 + repetition
    service["spec"]["ports"] = _ports((("TCP", 80), ("TCP", port), ("UDP", 53)))
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
    target.router.restore()
    if target.kube is not None:
        target.kube.call("DELETE", ROUTER_POLICIES)
        deadline = time.monotonic() + 60
        while target.kube.call("GET", ROUTER_POLICIES)["items"]:
            if time.monotonic() > deadline:
                raise RuntimeError("RouterPolicies not deleted in 60 s")
            time.sleep(0.2)


# --- one scale -----------------------------------------------------------------------------------


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


def measure_scale(
    f: float, source: str, runs: int, python: str, job_root: Path, profile_dir: Path | None
) -> dict[str, Any]:
    sc = build_scenario(f)
    router = BenchEmulator()
    seed_router(router, f)
    router.save()
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
                target = Target(api, plane.admin_kubeconfig, None, router, url, python, job_root)
            else:
                snapshot = Path(tmp) / "cluster.yaml"
                write_snapshot(sc, snapshot)
                target = Target(None, None, snapshot, router, url, python, job_root)
            result["runs"] = run_phases(target, sc, runs, profile_dir)
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


# --- process start and --help --------------------------------------------------------------------


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


# --- verdicts and output -------------------------------------------------------------------------


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
            f"{s} first: no read per policy (≤ 3 router reads)",
            first["router"]["reads"] <= 3,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    LAUNCH.append(Launcher())
    COUNTER_DIR.mkdir()
    shutil.copy(Path(__file__).with_name("api_counter.py"), COUNTER_DIR / "sitecustomize.py")
    scales = [float(s) for s in args.scales.split(",")]
    source, why = args.source, None
    if source in ("auto", "apiserver"):
        why = control_plane_available()
        if why is not None and source == "apiserver":
            raise SystemExit(f"control plane unavailable: {why}")
        source = "snapshot" if why else "apiserver"
    if why:
        say(f"control plane unavailable ({why}); using the --from-file snapshot source")
    say(f"job: {args.python} -m sync_job from {args.job_root}; source: {source}")
    helpinfo = measure_help(args.python, args.job_root.resolve())
    results = []
    for f in scales:
        results.append(
            measure_scale(f, source, args.runs, args.python, args.job_root.resolve(), args.profile)
        )
    LAUNCH.pop().close()
    document = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "source": source if not why else f"snapshot (control plane unavailable: {why})",
        "floor": "The floor " + " ".join(__doc__.split("The floor ")[1].split("\n\n")[0].split()),
        "help": helpinfo,
        "results": results,
    }
    return report(document, args.json)


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


if __name__ == "__main__":
    sys.exit(main())
