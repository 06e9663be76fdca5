"""The fault tests' world: clusters built from a few policies, passes run in-process against the
RouterOS emulator, what "converged" means, the 50+-write scenario, and request recorders.

Randomness is seeded; nothing waits on the clock (backoff sleeps are injected, and in-process a
reply delayed past the client timeout raises the timeout at once).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from sync_job.errors import SyncError
from sync_job.report import RunReport
from sync_job.router.client import (
    RouterReader,
    RouterSettings,
    RouterWriter,
    make_http_client,
)
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table
from sync_job.run import SyncSettings, run_once
from sync_job.source.snapshot import ANNOTATION, ClusterSnapshot, Pod, Service
from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import (
    ADDRESS_LIST,
    FILTER,
    NAT,
    PASSWORD,
    Router,
    assert_foreign_unchanged,
    run_cli,
    seed_router,
)

BASE = "https://router.invalid/rest"
NOW = datetime(2025, 1, 1, tzinfo=UTC)
OWN = Ownership()
MANAGED = (
    "chain",
    "action",
    "protocol",
    "dst-port",
    "src-address-list",
    "to-addresses",
    "to-ports",
)
SETTINGS = RouterSettings(BASE, "admin", PASSWORD, timeout=0.2, read_attempts=3, deadline=60.0)

# -- building clusters and running passes ---------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    name: str
    sources: tuple[str, ...]
    ports: tuple[tuple[str, int], ...]  # (Service protocol, port)
    gateway: str


def addresses(net: str, first: int, count: int) -> tuple[str, ...]:
    return tuple(f"{net}.{i}" for i in range(first, first + count))


def snapshot(*policies: Policy) -> ClusterSnapshot:
    raw = [
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": p.name, "annotations": {ANNOTATION: "true"}},
            "spec": {
                "endpointSelector": {"matchLabels": {"app": p.name}},
                "ingress": [{"fromCIDR": [f"{a}/32" for a in p.sources]}],
            },
        }
        for p in policies
    ]
    pods = [Pod("default", f"{p.name}-0", {"app": p.name}) for p in policies]
    services = [
        Service(
            "default",
            p.name,
            "LoadBalancer",
            {"app": p.name},
            [{"port": port, "protocol": proto} for proto, port in p.ports],
            (p.gateway,),
        )
        for p in policies
    ]
    return ClusterSnapshot(raw, pods, services)


def no_sleep(seconds: float) -> None:
    """Backoff sleeps are skipped: these tests check behaviour, not waiting."""


def run(
    emulator: RouterOSEmulator,
    cluster: ClusterSnapshot,
    *,
    check: bool = False,
    settings: RouterSettings = SETTINGS,
    transport: httpx.BaseTransport | None = None,
) -> RunReport:
    with make_http_client(settings, transport=transport or emulator.transport()) as http:
        kind = RouterReader if check else RouterWriter
        router = kind(http, settings, sleep=no_sleep, rng=random.Random(0))
        return run_once(
            read_cluster=lambda: cluster,
            router=router,
            kube=None,
            settings=SyncSettings(),
            check=check,
            now=lambda: NOW,
        )


def exit_code(emulator: RouterOSEmulator, cluster: ClusterSnapshot, **kw: Any) -> int:
    """What the command would exit with: 1 on any failure, else 0."""
    try:
        report = run(emulator, cluster, **kw)
    except SyncError:
        return 1
    return 1 if report.failed else 0


def fresh_router() -> tuple[RouterOSEmulator, dict[str, list[dict[str, str]]]]:
    emulator = RouterOSEmulator("admin", PASSWORD)
    foreign, _ = seed_router(emulator)
    return emulator, foreign


def rest(emulator: RouterOSEmulator) -> httpx.Client:
    return httpx.Client(transport=emulator.transport(), base_url=BASE, auth=("admin", PASSWORD))


# -- what "converged" means ---------------------------------------------------------------------


def state(emulator: RouterOSEmulator) -> dict[str, Any]:
    """The router as the tool is judged on it: owned rules by identity and managed fields
    (duplicates kept, so they show), owned entries, and the order of the whole filter table
    (foreign rows by id, owned rows and the marker by comment)."""
    view: dict[str, Any] = {}
    for table in (Table.FILTER, Table.NAT):
        view[table.label] = sorted(
            (
                row["comment"],
                tuple((k, row.get(k, "")) for k in MANAGED),
                row.get("disabled", "false"),
            )
            for row in emulator.rows(table.value)
            if OWN.owner_policy(table, row) is not None
        )
    view["address-list"] = sorted(
        (row["list"], row["address"], row["disabled"])
        for row in emulator.rows(ADDRESS_LIST)
        if OWN.owner_policy(Table.ADDRESS_LIST, row) is not None
    )
    view["filter order"] = [
        row["comment"]
        if OWN.owner_policy(Table.FILTER, row) is not None or OWN.is_marker(Table.FILTER, row)
        else row[".id"]
        for row in emulator.rows(FILTER)
    ]
    return view


def duplicates(emulator: RouterOSEmulator) -> int:
    keys = [
        OWN.identity(table, row)
        for table in Table
        for row in emulator.rows(table.value)
        if OWN.owner_policy(table, row) is not None
    ]
    return len(keys) - len(set(keys))


def desired_state(cluster: ClusterSnapshot) -> dict[str, Any]:
    """What a clean run on a fresh router makes of `cluster`."""
    emulator, foreign = fresh_router()
    report = run(emulator, cluster)
    assert not report.failed
    assert_foreign_unchanged(emulator, foreign)
    return state(emulator)


def assert_converged(
    emulator: RouterOSEmulator,
    foreign: dict[str, list[dict[str, str]]],
    cluster: ClusterSnapshot,
    expected: dict[str, Any],
) -> None:
    assert_foreign_unchanged(emulator, foreign)
    assert duplicates(emulator) == 0
    assert state(emulator) == expected
    assert not run(emulator, cluster, check=True).plan  # and a further pass plans nothing


# -- the scenario: 4 policies on the router, several hand edits, then a new cluster ------------

BEFORE = snapshot(
    Policy("alpha", addresses("203.0.113", 10, 6), (("TCP", 80), ("TCP", 443)), "10.0.0.5"),
    Policy("beta", addresses("198.51.100", 20, 5), (("TCP", 22), ("UDP", 53)), "10.0.0.6"),
    Policy(
        "delta",
        addresses("192.0.2", 30, 4),
        (("TCP", 8080), ("UDP", 5000), ("UDP", 5001)),
        "10.0.0.7",
    ),
    Policy("epsilon", addresses("192.0.2", 40, 3), (("SCTP", 9000), ("TCP", 25)), "10.0.0.8"),
)
AFTER = snapshot(
    Policy(
        "alpha",
        addresses("203.0.113", 13, 7),  # 3 sources gone, 4 new
        (("TCP", 80), ("TCP", 443), ("TCP", 8443)),
        "10.0.0.5",
    ),
    # beta is gone: everything it owned is deleted
    Policy("delta", addresses("192.0.2", 30, 4), (("TCP", 8080), ("UDP", 5000)), "10.0.0.17"),
    Policy("epsilon", addresses("192.0.2", 40, 3), (("SCTP", 9000), ("TCP", 25)), "10.0.0.8"),
    Policy(
        "gamma",
        addresses("198.51.100", 60, 8),
        (("TCP", 22), ("TCP", 80), ("TCP", 443), ("UDP", 53), ("UDP", 123)),
        "10.0.0.9",
    ),
    Policy(
        "zeta",
        addresses("203.0.113", 100, 10),
        tuple(("TCP", p) for p in range(3000, 3005)),
        "10.0.0.10",
    ),
)


def scenario_router() -> tuple[RouterOSEmulator, dict[str, list[dict[str, str]]]]:
    """The router after BEFORE was synced, then edited by hand."""
    emulator, foreign = fresh_router()
    assert not run(emulator, BEFORE).failed
    rules = {row["comment"]: row[".id"] for row in emulator.rows(FILTER) if "comment" in row}
    nat = {row["comment"]: row for row in emulator.rows(NAT) if "comment" in row}
    entries = {row["address"]: row[".id"] for row in emulator.rows(ADDRESS_LIST)}
    first = emulator.rows(FILTER)[0][".id"]
    with rest(emulator) as http:
        for call in (
            http.patch(f"{FILTER}/{rules['router-policy-sync::epsilon::tcp']}",
                       json={"disabled": "yes"}),
            http.post(f"{FILTER}/move",
                      json={"numbers": rules["router-policy-sync::epsilon::sctp"]}),
            http.post(f"{FILTER}/move", json={"numbers": rules["router-policy-sync::alpha::tcp"],
                                              "destination": first}),
            http.patch(f"{FILTER}/{rules['router-policy-sync::alpha::tcp']}", json={"log": "yes"}),
            http.patch(f"{ADDRESS_LIST}/{entries['192.0.2.41']}", json={"disabled": "yes"}),
            http.patch(f"{NAT}/{nat['router-policy-sync::delta::tcp::8080']['.id']}",
                       json={"to-ports": "8081"}),
        ):  # fmt: skip
            call.raise_for_status()
    copy = {k: v for k, v in nat["router-policy-sync::delta::udp::5000"].items() if k in MANAGED}
    emulator.seed(NAT, {**copy, "comment": "router-policy-sync::delta::udp::5000"})
    emulator.seed(ADDRESS_LIST, {"list": "router-policy-sync::alpha", "address": "203.0.113.14",
                                 "disabled": "true"})  # fmt: skip
    emulator.seed(FILTER, {"chain": "forward", "action": "accept", "protocol": "tcp",
                           "comment": "router-policy-sync::ghost::tcp"})  # fmt: skip
    emulator.seed(NAT, {"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
                        "dst-port": "1",
                        "comment": "router-policy-sync::ghost::tcp::1"})  # fmt: skip
    for address in ("192.0.2.200", "192.0.2.201"):
        emulator.seed(ADDRESS_LIST, {"list": "router-policy-sync::ghost", "address": address})
    emulator.reset_counts()
    return emulator, foreign


# -- reads: bounded retries, backoff with jitter, a total deadline --------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def reader(
    emulator: RouterOSEmulator, clock: FakeClock, *, writer: bool = False, **settings: Any
) -> tuple[RouterReader, httpx.Client]:
    config = RouterSettings(BASE, "admin", PASSWORD, **settings)
    http = make_http_client(config, transport=emulator.transport())
    kind = RouterWriter if writer else RouterReader
    return kind(http, config, sleep=clock.sleep, clock=clock, rng=random.Random(1)), http


# -- writes: never blindly retried; re-read before deciding ----------------------------------------


def one_entry() -> ClusterSnapshot:
    return snapshot(Policy("solo", ("203.0.113.7",), (("TCP", 80),), "10.0.0.5"))


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # without /rest/, with the id
    params: dict[str, str]
    body: dict[str, Any]

    @property
    def table(self) -> str:
        return self.path.split("/*")[0].removesuffix("/move")

    @property
    def target(self) -> str:
        """The row a write or a re-read is about: its `.id`, or its identity for a create."""
        if "/*" in self.path:
            return "*" + self.path.split("/*")[1]
        if self.body.get("numbers"):
            return str(self.body["numbers"])
        fields = self.body or self.params
        return fields.get("comment") or f"{fields.get('list')} {fields.get('address')}"


class Recorder(httpx.BaseTransport):
    """Every request as the client sent it (dropped ones too), in order."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.calls: list[Call] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = yaml.safe_load(request.read() or b"{}")
        path = request.url.path.removeprefix("/rest/")
        self.calls.append(Call(request.method, path, dict(request.url.params), body))
        return self.inner.handle_request(request)


def _documents(cluster: ClusterSnapshot) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [dict(p) for p in cluster.policies]
    for pod in cluster.pods:
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": pod.name, "namespace": pod.namespace,
                                  "labels": dict(pod.labels)},
                     "status": {"phase": "Running"}})  # fmt: skip
    for svc in cluster.services:
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": svc.name, "namespace": svc.namespace},
                     "spec": {"type": "LoadBalancer", "selector": dict(svc.selector),
                              "ports": list(svc.ports)},
                     "status": {"loadBalancer": {"ingress": [
                         {"ip": svc.ingress_ips[0]}]}}})  # fmt: skip
    return docs


def cli(router: Router, path: Path, *extra: str) -> tuple[int, str, str]:
    result = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url,
        "--mikrotik-timeout", "0.5", "--log-level", "debug", *extra,
    )  # fmt: skip
    return result.code, result.stdout, result.stderr
