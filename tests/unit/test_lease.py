"""LeaseLock against an in-memory Lease API: create, wait, take over, conflicts, release.

The fake keeps one Lease and checks `metadata.resourceVersion` on PUT the way the API server
does (a stale one answers 409 Conflict), so the optimistic-locking protocol is exercised for
real. Time is `FakeTime`: waiting advances the clocks instead of sleeping.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync_job.errors import SyncError
from sync_job.kubeapi import KubeClient
from sync_job.lease import LeaseHeld, LeaseLock
from tests.unit.fake_kube_api import FakeApi, FakeTime, Reply, Sent, no_sleep, status

NS, NAME = "router-policy-sync", "router-policy-sync"
COLLECTION = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
ONE = f"{COLLECTION}/{NAME}"
NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseServer:
    """One namespace's Leases, with resourceVersion checks on update."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 10
        # Runs just before a PUT is judged: another run writing in between.
        self.before_put: Callable[[LeaseServer], None] = lambda server: None

    def put_holder(self, holder: str, renewed: datetime, duration: int = 300, transitions: int = 3):
        self.version += 1
        self.leases[NAME] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": NAME, "namespace": NS, "resourceVersion": str(self.version)},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": stamp(renewed),
                "renewTime": stamp(renewed),
                "leaseTransitions": transitions,
            },
        }

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.leases[NAME]["spec"])

    def handle(self, sent: Sent) -> Reply:
        if sent.method == "GET" and sent.path == ONE:
            if NAME not in self.leases:
                return status(404, f'leases.coordination.k8s.io "{NAME}" not found', "NotFound")
            return Reply(200, copy.deepcopy(self.leases[NAME]))
        if sent.method == "POST" and sent.path == COLLECTION:
            if NAME in self.leases:
                return status(409, "already exists", "AlreadyExists")
            return self._store(sent.body)
        if sent.method == "PUT" and sent.path == ONE:
            self.before_put(self)
            if NAME not in self.leases:
                return status(404, "not found", "NotFound")
            current = self.leases[NAME]["metadata"]["resourceVersion"]
            if sent.body["metadata"].get("resourceVersion") != current:
                return status(
                    409,
                    "Operation cannot be fulfilled on leases.coordination.k8s.io "
                    f'"{NAME}": the object has been modified',
                    "Conflict",
                )
            return self._store(sent.body)
        raise AssertionError(f"unexpected request {sent}")

    def _store(self, body: dict[str, Any]) -> Reply:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[NAME] = stored
        return Reply(200 if "resourceVersion" in body["metadata"] else 201, stored)


def lock(
    server: LeaseServer, clock: FakeTime, holder: str = "scheduled-1"
) -> tuple[LeaseLock, FakeApi]:
    api = FakeApi(server.handle)
    kube = KubeClient(api, sleep=no_sleep)
    held = LeaseLock(
        kube, NS, NAME, holder, duration=300, wait=10.0, clock=clock.wall,
        sleep=clock.sleep, poll=2.0, monotonic=clock.monotonic,
    )  # fmt: skip
    return held, api


def verbs(api: FakeApi) -> list[str]:
    return [sent.method for sent in api.sent]


def test_a_missing_lease_is_created_with_this_run_as_holder() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    held, api = lock(server, clock)
    held.acquire()
    assert verbs(api) == ["GET", "POST"]
    assert server.spec == {
        "holderIdentity": "scheduled-1",
        "leaseDurationSeconds": 300,
        "acquireTime": "2026-12-01T10:00:00.000000Z",
        "renewTime": "2026-12-01T10:00:00.000000Z",
        "leaseTransitions": 0,
    }
    assert clock.slept == []


def test_a_live_holder_is_waited_for_then_named_in_the_failure() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("manual-7-abcde", NOW - timedelta(seconds=30))
    held, api = lock(server, clock)
    with pytest.raises(LeaseHeld) as raised:
        held.acquire()
    message = str(raised.value)
    assert "manual-7-abcde" in message
    assert f"Lease {NS}/{NAME}" in message
    assert "waited 10s" in message
    # Polled every 2 s for the 10 s wait, never written.
    assert clock.slept == [2.0] * 5
    assert set(verbs(api)) == {"GET"}
    assert len(api.sent) == 6
    assert server.spec["holderIdentity"] == "manual-7-abcde"


def test_a_holder_that_gives_the_lease_back_while_waited_for_is_followed() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("manual-7-abcde", NOW - timedelta(seconds=30))
    held, _ = lock(server, clock)
    real_sleep = clock.sleep

    def sleep_then_release(seconds: float) -> None:
        real_sleep(seconds)
        if len(clock.slept) == 2:
            server.leases[NAME]["spec"]["holderIdentity"] = None

    held.sleep = sleep_then_release
    held.acquire()
    assert clock.slept == [2.0, 2.0]
    assert server.spec["holderIdentity"] == "scheduled-1"
    assert server.spec["leaseTransitions"] == 4
    assert server.spec["acquireTime"] == stamp(NOW + timedelta(seconds=4))


def test_an_expired_lease_is_taken_over_with_one_more_transition(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("crashed-run", NOW - timedelta(seconds=61), duration=60, transitions=3)
    held, api = lock(server, clock)
    held.acquire()
    assert verbs(api) == ["GET", "PUT"]
    assert api.sent[1].body["metadata"]["resourceVersion"] == "11"  # the version read
    assert server.spec == {
        "holderIdentity": "scheduled-1",
        "leaseDurationSeconds": 300,
        "acquireTime": stamp(NOW),
        "renewTime": stamp(NOW),
        "leaseTransitions": 4,
    }
    assert "taking over Lease" in caplog.text and "crashed-run" in caplog.text
    assert clock.slept == []


def test_a_lease_just_inside_its_duration_is_still_live() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("other", NOW - timedelta(seconds=59), duration=60)
    held, _ = lock(server, clock)
    held.wait = 0.0
    with pytest.raises(LeaseHeld, match="other"):
        held.acquire()


def test_a_conflict_on_update_looks_again_and_finds_the_winner() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("crashed-run", NOW - timedelta(hours=1))

    def rival_wins(srv: LeaseServer) -> None:
        srv.before_put = lambda _srv: None
        srv.put_holder("rival-run", NOW)

    server.before_put = rival_wins
    held, api = lock(server, clock)
    with pytest.raises(LeaseHeld, match="rival-run"):
        held.acquire()
    # GET, PUT (409), then looked again after one poll, and kept seeing the rival.
    assert verbs(api)[:3] == ["GET", "PUT", "GET"]
    assert verbs(api).count("PUT") == 1
    assert clock.slept[0] == 2.0
    assert server.spec["holderIdentity"] == "rival-run"


def test_a_conflict_on_update_then_a_free_lease_is_taken_on_the_next_look() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("crashed-run", NOW - timedelta(hours=1))

    def bump(srv: LeaseServer) -> None:  # someone touched it, but it is still expired
        srv.before_put = lambda _srv: None
        srv.put_holder("crashed-run", NOW - timedelta(hours=1), transitions=5)

    server.before_put = bump
    held, api = lock(server, clock)
    held.acquire()
    assert verbs(api) == ["GET", "PUT", "GET", "PUT"]
    assert server.spec["holderIdentity"] == "scheduled-1"
    assert server.spec["leaseTransitions"] == 6


def test_a_lease_read_that_is_refused_is_a_sync_error() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    held, api = lock(server, clock)
    api.handler = lambda sent: status(403, 'leases "x" is forbidden')
    with pytest.raises(SyncError, match=r"cannot read Lease .*: 403 leases \"x\" is forbidden"):
        held.acquire()
    assert len(api.sent) == 1


def test_release_clears_the_holder_it_owns() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    held, api = lock(server, clock)
    held.acquire()
    held.release()
    assert verbs(api) == ["GET", "POST", "GET", "PUT"]
    assert server.spec["holderIdentity"] is None
    assert server.spec["renewTime"] is None
    assert server.spec["leaseTransitions"] == 0
    # Free again at once for the next run, with no wait.
    nxt, _ = lock(server, clock, holder="scheduled-2")
    nxt.wait = 0.0
    nxt.acquire()
    assert server.spec["holderIdentity"] == "scheduled-2"
    assert server.spec["leaseTransitions"] == 1


def test_release_leaves_a_lease_another_run_holds() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    server.put_holder("someone-else", NOW)
    held, api = lock(server, clock)
    held.release()
    assert verbs(api) == ["GET"]
    assert server.spec["holderIdentity"] == "someone-else"


def test_release_that_fails_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    held, api = lock(server, clock)
    held.acquire()
    api.handler = lambda sent: status(403, "forbidden")
    held.release()
    assert "could not release Lease" in caplog.text
