"""A run cut by its deadline leaves whole policies (README "Performance", issue 18).

`run_once` in process against the emulator, on an injected clock: every request the emulator
sees advances it by a cost (a stand-in for a router's per-request latency; nothing is timed).
Whatever the deadline, and wherever it cuts, every policy on the router is complete (`Synced`)
or untouched (`SyncFailed`, not reached), except at most the one in progress, and the next runs
continue until the router is converged.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from sync_job.model import Reason
from sync_job.report import RunReport
from sync_job.router.apply import NOT_REACHED
from sync_job.router.client import RouterSettings, RouterWriter, make_http_client
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table
from sync_job.run import SyncSettings, run_once
from sync_job.source.snapshot import ANNOTATION, ClusterSnapshot, pod_from_raw, service_from_raw
from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import PASSWORD, seed_router

NOW = datetime(2026, 12, 1, tzinfo=UTC)
OWN = Ownership()
POLICIES = 6
# per policy: 3 list entries, a filter rule per protocol (tcp, udp), a NAT rule per port
PER_POLICY = 3 + 2 + 2


def cluster() -> ClusterSnapshot:
    policies: list[Any] = []
    pods, services = [], []
    for i in range(POLICIES):
        name = f"p{i}"
        policies.append({
            "metadata": {"name": name, "annotations": {ANNOTATION: "true"}},
            "spec": {
                "endpointSelector": {"matchLabels": {"app": name, "k8s:io.kubernetes.pod.namespace": "apps"}},  # noqa: E501
                "ingress": [{"fromCIDR": [f"203.0.113.{i * 3 + j + 1}/32" for j in range(3)]}],
            },
        })  # fmt: skip
        pods.append(pod_from_raw(
            {"metadata": {"name": name, "namespace": "apps", "labels": {"app": name}},
             "status": {"phase": "Running"}}
        ))  # fmt: skip
        services.append(service_from_raw(
            {"metadata": {"name": name, "namespace": "apps"},
             "spec": {"type": "LoadBalancer", "selector": {"app": name},
                      "ports": [{"port": 443}, {"port": 53, "protocol": "UDP"}]},
             "status": {"loadBalancer": {"ingress": [{"ip": f"198.51.100.{i + 10}"}]}}}
        ))  # fmt: skip
    return ClusterSnapshot(policies, pods, services)


class Clock:
    """Advanced by the emulator: `cost(n)` seconds for its n-th request of the run."""

    def __init__(self, emulator: RouterOSEmulator, cost: Any) -> None:
        self.now = 0.0
        self.count = 0
        self.cost = cost
        emulator.before_request.append(self.tick)

    def tick(self, method: str, path: str) -> None:
        self.count += 1
        self.now += self.cost(self.count, method)

    def __call__(self) -> float:
        return self.now


def run(emulator: RouterOSEmulator, deadline: float, cost: Any = lambda n, m: 1.0) -> RunReport:
    settings = RouterSettings(
        "https://router.test.invalid/rest", "admin", PASSWORD, deadline=deadline
    )
    emulator.before_request.clear()
    clock = Clock(emulator, cost)
    with make_http_client(settings, transport=emulator.transport()) as http:
        return run_once(
            read_cluster=cluster,
            router=RouterWriter(http, settings, clock=clock, sleep=lambda _: None),
            kube=None,
            settings=SyncSettings(),
            check=False,
            now=lambda: NOW,
        )


def owned(emulator: RouterOSEmulator) -> Counter[str]:
    """How many router objects each policy owns."""
    counts: Counter[str] = Counter()
    for table in Table:
        for row in emulator.rows(table.value):
            policy = OWN.owner_policy(table, row)
            if policy is not None:
                counts[policy] += 1
    return counts


def check_whole(emulator: RouterOSEmulator, report: RunReport, partial_allowed: int) -> None:
    if partial_allowed == 0:  # stopped by itself: time was kept to read back what it wrote
        assert report.not_kept == [] and not (report.applied and report.applied.stopped)
    counts = owned(emulator)
    partial = [p for p in counts if counts[p] not in (0, PER_POLICY)]
    assert len(partial) <= partial_allowed, counts
    outcomes = {o.name: o for o in report.outcomes}
    for name, outcome in outcomes.items():
        if outcome.ready:
            assert counts[name] == PER_POLICY, (name, counts)
        elif counts[name] == 0 or outcome.message == NOT_REACHED:
            assert outcome.reason is Reason.SYNC_FAILED
            assert outcome.message == NOT_REACHED, outcome
        else:
            assert name in partial and "deadline" in outcome.message, outcome


def converge(emulator: RouterOSEmulator, deadline: float, cost: Any, partial: int) -> int:
    for runs in range(1, 20):
        report = run(emulator, deadline, cost)
        check_whole(emulator, report, partial)
        if not report.plan:
            return runs - 1
    raise AssertionError("never converged")


@pytest.mark.parametrize("deadline", [14, 16, 17, 20, 22, 26, 31, 38, 45, 60])
def test_a_steady_router_leaves_only_whole_policies_run_after_run(deadline: float) -> None:
    """Each request costs 1 s: the applier stops before a policy it cannot finish."""
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    runs = converge(emulator, deadline, lambda n, m: 1.0, partial=0)
    assert owned(emulator) == dict.fromkeys((f"p{i}" for i in range(POLICIES)), PER_POLICY)
    # 3 table reads, /system/resource and the read-back of 3 tables around the writes; what
    # is left fits whole policies, and the run stops before the next one
    fits = (deadline - 3 - 1 - 3) // PER_POLICY
    assert runs == -(-POLICIES // fits)


@pytest.mark.parametrize("slow_from", [6, 9, 13, 20, 27])
def test_a_router_that_slows_down_cuts_at_most_the_policy_in_progress(slow_from: int) -> None:
    """From its `slow_from`-th request the router takes 4 s a request: the estimate falls
    short and the client's deadline cuts a policy in progress; only that one is partial."""
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    cut = run(emulator, 40, lambda n, m: 1.0 if n < slow_from else 4.0)
    check_whole(emulator, cut, partial_allowed=1)
    assert cut.applied is not None and cut.applied.not_reached
    assert converge(emulator, 40, lambda n, m: 1.0, partial=1) >= 1
    assert owned(emulator) == dict.fromkeys((f"p{i}" for i in range(POLICIES)), PER_POLICY)


def test_a_policy_larger_than_a_whole_run_still_progresses() -> None:
    """A deadline too short for any one policy: each run starts its first group anyway, so the
    router converges, with at most one policy partly there after each run."""
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    assert converge(emulator, 9, lambda n, m: 1.0, partial=1) > POLICIES
    assert owned(emulator) == dict.fromkeys((f"p{i}" for i in range(POLICIES)), PER_POLICY)
