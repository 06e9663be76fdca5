"""Reads are retried with bounded, jittered exponential backoff inside a total deadline."""

from __future__ import annotations

import random

import httpx
import pytest
import yaml

from sync_job.errors import RouterError, RouterUnreachable
from sync_job.router.client import (
    RouterDeadline,
    RouterReader,
    RouterSettings,
    make_http_client,
)
from sync_job.router.tables import Table
from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    PASSWORD,
    REPO,
)
from tests.support.scenario import (
    BASE,
    FakeClock,
    fresh_router,
    reader,
)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(500),
        Fault.error(503),
        Fault.dropped_before(),
        Fault.dropped_after(),
        Fault.slow(30.0),
        Fault.session_closed(),
    ],
    ids=lambda f: f.describe(),
)
def test_reads_retry_transient_failures_with_jittered_backoff(fault: Fault) -> None:
    emulator, _ = fresh_router()
    faults = Faults(emulator)
    faults.on_request(1, fault).on_request(2, fault)
    clock = FakeClock()
    router, http = reader(emulator, clock, timeout=0.2)
    with http:
        assert len(router.rows(Table.FILTER)) == 4
    assert len(faults.injected) == 2 and router.requests["GET"] == 3
    assert len(clock.sleeps) == 2
    assert 0.1 <= clock.sleeps[0] <= 0.3 and 0.2 <= clock.sleeps[1] <= 0.6  # 0.2, 0.4 x [0.5, 1.5]


def test_read_retries_are_bounded() -> None:
    emulator, _ = fresh_router()
    Faults(emulator).fail_fraction(1.0, 0, (503,))
    clock = FakeClock()
    router, http = reader(emulator, clock, read_attempts=5)
    with http, pytest.raises(RouterError) as failure:
        router.rows(Table.NAT)
    assert failure.value.status == 503 and router.requests["GET"] == 5
    assert len(clock.sleeps) == 4
    # Exponential: each pause is the base 0.2 s doubled per attempt, times a jitter in [0.5, 1.5].
    for attempt, pause in enumerate(clock.sleeps):
        assert 0.1 * 2**attempt <= pause <= 0.3 * 2**attempt
    assert len(set(clock.sleeps)) == 4


@pytest.mark.parametrize("status", [400, 404])
def test_reads_do_not_retry_what_cannot_get_better(status: int) -> None:
    emulator, _ = fresh_router()
    Faults(emulator).fail_nth(1, status, "no such command" if status == 400 else None)
    clock = FakeClock()
    router, http = reader(emulator, clock)
    with http, pytest.raises(RouterError):
        router.rows(Table.FILTER)
    assert router.requests["GET"] == 1 and clock.sleeps == []


def test_the_deadline_bounds_every_request_and_retry() -> None:
    emulator, _ = fresh_router()
    Faults(emulator).fail_fraction(1.0, 0, (Fault.dropped_before(),))
    clock = FakeClock()
    timeouts: list[float] = []
    inner = emulator.transport()

    def spy(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        return inner.handle_request(request)

    config = RouterSettings(BASE, "admin", PASSWORD, timeout=10.0, read_attempts=50, deadline=3.0)
    with make_http_client(config, transport=httpx.MockTransport(spy)) as http:
        router = RouterReader(http, config, sleep=clock.sleep, clock=clock, rng=random.Random(3))
        with pytest.raises(RouterUnreachable):
            router.rows(Table.FILTER)
        assert clock.now < 3.0  # it gave up inside the deadline, well before 50 attempts
        assert 3 <= router.requests["GET"] < 10
        assert timeouts[0] == 3.0  # each request's timeout is cut to the time left
        assert all(t <= 3.0 - s for t, s in zip(timeouts[1:], _running(clock.sleeps), strict=False))
        clock.now = 3.0
        with pytest.raises(RouterDeadline, match="deadline of 3s has passed"):
            router.rows(Table.NAT)
    assert len(timeouts) == router.requests["GET"]  # the last one was never sent


def _running(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out


def test_the_default_deadline_is_well_inside_the_cronjob_deadline() -> None:
    # The manifests moved to manifests/base/ (kustomize base + overlays); read either layout.
    path = next(
        p
        for p in (REPO / "manifests" / "base" / "cronjob.yaml", REPO / "manifests" / "cronjob.yaml")
        if p.exists()
    )
    cronjob = yaml.safe_load(path.read_text())
    active = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    defaults = RouterSettings(BASE, "admin", "")
    assert active == 240
    # The deadline counts from the client's creation, which precedes the Lease wait (60 s max);
    # no request starts after it and none outlives it, so the router side of a run ends by
    # `deadline` seconds, leaving the rest for the cluster reads and the status writes.
    assert defaults.deadline <= active / 2
