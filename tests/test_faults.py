"""Failure injection: the job stays safe when the router or the network misbehaves.

Everything here runs the real pass (`run_once` with a `RouterWriter`, or the CLI) against the
RouterOS emulator with its `Faults` switched on, and then checks the router itself:

- the emulator's fault modes do what they say (in-process and over HTTP);
- reads are retried with bounded, jittered exponential backoff inside a total deadline; writes are
  never blindly retried, and after an ambiguous failure the applier re-reads before deciding;
- 401/403 and the permission 500s fail fast, saying what to check;
- crash-point sweep: a 50+-write scenario is stopped at EVERY write (killed, or the reply lost in
  five different ways) and one clean run then converges to exactly the fresh-run state;
- random faults (10% of requests, many seeds): each run converges or fails (exit 1), never
  touches a foreign object, and the next clean run converges;
- two runs at once (the Lease bypassed), interleaved request by request by a seeded scheduler:
  one more clean run leaves exactly the desired state, duplicates collapsed.

Randomness is seeded; nothing waits on the clock (backoff sleeps are injected, and in-process a
reply delayed past the client timeout raises the timeout at once).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sync_job.errors import RouterAuthError, RouterError, RouterUnreachable, SyncError
from sync_job.model import Action
from sync_job.report import RunReport
from sync_job.router.client import (
    RouterDeadline,
    RouterReader,
    RouterSettings,
    RouterWriter,
    make_http_client,
)
from sync_job.router.ownership import Ownership
from sync_job.router.tables import Table
from sync_job.run import SyncSettings, run_once
from sync_job.source.snapshot import ANNOTATION, ClusterSnapshot, Pod, Service
from sync_job.testing.emulator import WRITE_METHODS, Crash, RouterOSEmulator
from sync_job.testing.faults import Fault, Faults
from tests.conftest import (
    ADDRESS_LIST,
    FILTER,
    NAT,
    PASSWORD,
    REPO,
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


@pytest.fixture(autouse=True)
def no_password_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of every test here, at debug level, is checked for the password."""
    caplog.set_level(logging.DEBUG)
    yield
    assert PASSWORD not in caplog.text


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


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return desired_state(AFTER)


@pytest.fixture(scope="module")
def sweep_writes() -> int:
    """The writes one clean run needs from the scenario router: the sweep covers each one."""
    emulator, _ = scenario_router()
    faults = Faults(emulator)
    report = run(emulator, AFTER)
    assert not report.failed
    counts = report.plan.counts()
    assert all(counts[action] for action in Action), counts  # creates, updates, moves, deletes
    assert len({change.policy for change in report.plan.changes}) >= 5
    assert faults.writes_seen == len(report.plan.changes)
    return faults.writes_seen


def test_the_sweep_scenario_has_at_least_50_writes_of_every_kind(
    sweep_writes: int, expected: dict[str, Any]
) -> None:
    assert sweep_writes >= 50
    emulator, foreign = scenario_router()
    assert state(emulator) != expected and duplicates(emulator) == 2
    assert not run(emulator, AFTER).failed
    assert_converged(emulator, foreign, AFTER, expected)
    # Fields the tool does not manage survive on owned rules.
    alpha = next(r for r in emulator.rows(FILTER) if r.get("comment", "").endswith("alpha::tcp"))
    assert alpha["log"] == "true"


# -- the emulator's fault modes ---------------------------------------------------------------


def test_fault_modes_in_process() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    faults = Faults(emulator)
    body = {"chain": "forward", "comment": "x"}
    with rest(emulator) as http:
        faults.fail_nth(1, 503)
        assert http.get(FILTER).status_code == 503
        faults.fail_nth(2, 400, "failure: simulated")
        reply = http.get(FILTER)
        assert (reply.status_code, reply.json()["detail"]) == (400, "failure: simulated")
        faults.fail_nth(3, 401)
        assert http.get(FILTER).json() == {"error": 401, "message": "Unauthorized"}
        faults.drop_before(1, methods=WRITE_METHODS)
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        assert emulator.rows(FILTER) == []  # dropped before: nothing happened
        faults.drop_after_write(1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        assert len(emulator.rows(FILTER)) == 1  # the write happened, the client never heard
        faults.delay_nth(3, 5.0, methods=WRITE_METHODS)
        with pytest.raises(httpx.ReadTimeout):
            http.put(FILTER, json=body, timeout=0.2)
        assert len(emulator.rows(FILTER)) == 2  # processed at once, the reply came too late
        faults.session_closed(4)
        reply = http.put(FILTER, json=body)
        assert (reply.status_code, reply.json()["detail"]) == (400, "Session closed")
        assert len(emulator.rows(FILTER)) == 3  # ... and it ran anyway
        faults.session_closed(5, applied=False)
        assert http.put(FILTER, json=body).status_code == 400
        assert len(emulator.rows(FILTER)) == 3
        faults.crash_after_write(4)
        with pytest.raises(Crash):
            http.patch(f"{FILTER}/{emulator.rows(FILTER)[0]['.id']}", json={"comment": "y"})
        assert emulator.rows(FILTER)[0]["comment"] == "y"
        assert http.get(FILTER).status_code == 200  # every fault above fired exactly once
    assert [(i.method, i.fault) for i in faults.injected] == [
        ("GET", "503"),
        ("GET", "400 failure: simulated"),
        ("GET", "401"),
        ("PUT", "drop before"),
        ("PUT", "drop after"),
        ("PUT", "delay 5.0s"),
        ("PUT", "400 Session closed (applied)"),
        ("PUT", "400 Session closed"),
        ("PATCH", "crash"),
    ]
    assert [i.write for i in faults.injected if i.method != "GET"] == [0, 1, 2, 3, 0, 4]
    assert [i.request for i in faults.injected] == list(range(1, 10))


def test_fail_fraction_is_seeded_and_close_to_p() -> None:
    def outcomes(seed: int) -> list[int]:
        emulator = RouterOSEmulator("admin", PASSWORD)
        Faults(emulator).fail_fraction(0.1, seed, (500, 503))
        with rest(emulator) as http:
            return [http.get(FILTER).status_code for _ in range(1000)]

    first = outcomes(7)
    assert first == outcomes(7) and first != outcomes(8)
    assert set(first) == {200, 500, 503}
    assert 60 <= sum(code != 200 for code in first) <= 140


def test_fault_modes_over_http() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    faults = Faults(emulator)
    body = {"chain": "forward", "comment": "x"}
    with emulator.serve() as url, httpx.Client(base_url=url, auth=("admin", PASSWORD)) as http:
        faults.drop_before(1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(FILTER)
        faults.drop_after_write(1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        assert len(emulator.rows(FILTER)) == 1
        faults.delay_nth(3, 1.0)
        with pytest.raises(httpx.ReadTimeout):
            http.put(FILTER, json=body, timeout=0.2)
        assert len(emulator.rows(FILTER)) == 2
        faults.crash_after_write(3)  # over HTTP a "crash" of the client is a dropped reply
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        faults.fail_nth(5, 503)
        assert http.get(FILTER).status_code == 503
        assert len(http.get(FILTER).json()) == 3


def test_fault_rules_refuse_what_can_never_fire() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    faults = Faults(emulator)
    with rest(emulator) as http:
        http.get(FILTER)
    with pytest.raises(ValueError, match="already happened"):
        faults.fail_nth(1, 500)
    with pytest.raises(ValueError):
        faults.on_write(1, Fault.dropped_before())  # a write that never happened has no "after"
    with pytest.raises(ValueError):
        faults.fail_fraction(1.5, 0)
    with pytest.raises(ValueError):
        faults.drop_before(2, methods={"FETCH"})


def test_odd_replies_are_errors_not_crashes() -> None:
    """RouterOS may put raw control characters in strings (a DHCP host name, reference 5.1);
    a proxy may answer with HTML. Neither may crash the client."""
    emulator, _ = fresh_router()
    replies = {
        ("GET", f"/rest/{NAT}"): (200, b'[{".id":"*99","comment":"host\x1bname\x07"}]'),
        ("GET", f"/rest/{ADDRESS_LIST}"): (200, b"<html>502 Bad Gateway</html>"),
        ("PUT", f"/rest/{FILTER}"): (201, b"<html>ok</html>"),
    }
    emulator.before_request.append(lambda method, path: replies.get((method, path)))
    clock = FakeClock()
    router, http = reader(emulator, clock, writer=True)
    assert isinstance(router, RouterWriter)
    with http:
        assert router.rows(Table.NAT) == [{".id": "*99", "comment": "host\x1bname\x07"}]
        with pytest.raises(RouterError, match="not JSON"):
            router.rows(Table.ADDRESS_LIST)
        with pytest.raises(RouterError, match="not JSON") as failure:
            router.create(Table.FILTER, {"chain": "forward", "comment": "x"})
        assert failure.value.ambiguous  # the write may well have happened: re-read first


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
    cronjob = yaml.safe_load((REPO / "manifests" / "cronjob.yaml").read_text())
    active = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    defaults = RouterSettings(BASE, "admin", "")
    assert active == 240
    # The deadline counts from the client's creation, which precedes the Lease wait (60 s max);
    # no request starts after it and none outlives it, so the router side of a run ends by
    # `deadline` seconds, leaving the rest for the cluster reads and the status writes.
    assert defaults.deadline <= active / 2


# -- fail fast on credentials, permissions and certificates -------------------------------------


@pytest.mark.parametrize(
    ("status", "detail", "hint"),
    [
        (401, None, "username and password"),
        (403, None, "username and password"),
        (500, "not enough permissions (9)", "read, write, api and rest-api"),
        (500, "std failure: not allowed (9)", "read, write, api and rest-api"),
    ],
)
def test_auth_and_permission_failures_fail_fast(status: int, detail: str | None, hint: str) -> None:
    emulator, _ = fresh_router()
    Faults(emulator).fail_fraction(1.0, 0, (Fault.error(status, detail),))
    clock = FakeClock()
    router, http = reader(emulator, clock)
    with http, pytest.raises(RouterAuthError, match=hint) as failure:
        router.rows(Table.FILTER)
    assert router.requests["GET"] == 1 and clock.sleeps == []
    assert "policies" in str(failure.value)


def test_auth_failure_during_apply_stops_every_policy() -> None:
    emulator, foreign = fresh_router()
    Faults(emulator).fail_nth(3, 401, methods=WRITE_METHODS)
    report = run(emulator, AFTER)
    assert report.applied is not None and report.failed
    assert len(report.applied.done) == 2 and len(report.applied.failed) == 1
    assert sum(n for (method, _), n in emulator.requests.items() if method != "GET") == 3
    assert {o.reason.value for o in report.outcomes} == {"SyncFailed"}
    assert_foreign_unchanged(emulator, foreign)


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


@pytest.mark.parametrize(
    ("fault", "expected_calls", "log"),
    [
        # The write took effect: the re-read finds it and adopts it; no second PUT.
        (Fault.dropped_after(), ["PUT", "GET"], "adopting"),
        (Fault.slow(30.0), ["PUT", "GET"], "adopting"),
        (Fault.session_closed(), ["PUT", "GET"], "adopting"),
        (Fault.error(500, applied=True), ["PUT", "GET"], "adopting"),
        # It did not: the re-read finds nothing, and only then is it sent once more.
        (Fault.dropped_before(), ["PUT", "GET", "PUT"], "sending it once more"),
        (Fault.session_closed(applied=False), ["PUT", "GET", "PUT"], "sending it once more"),
        (Fault.error(503), ["PUT", "GET", "PUT"], "sending it once more"),
        # Not ambiguous: the router said no. No re-read, no retry; the policy fails.
        (Fault.error(400, "failure: simulated"), ["PUT"], None),
    ],
    ids=lambda v: v.describe() if isinstance(v, Fault) else "",
)
def test_an_ambiguous_create_is_re_read_before_deciding(
    fault: Fault, expected_calls: list[str], log: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    emulator, foreign = fresh_router()
    expected = desired_state(one_entry())
    faults = Faults(emulator)
    faults.on_request(1, fault, methods=WRITE_METHODS)
    recorder = Recorder(emulator.transport())
    report = run(emulator, one_entry(), transport=recorder)
    calls = recorder.calls[3:]  # after the three table reads
    about = [c for c in calls if c.target == "router-policy-sync::solo 203.0.113.7"]
    assert [c.method for c in about] == expected_calls
    assert calls[: len(expected_calls)] == about  # nothing else in between
    if log is None:
        assert report.failed and "failure: simulated" in caplog.text
        assert not [r for r in emulator.rows(ADDRESS_LIST) if r["list"].endswith("solo")]
    else:
        assert not report.failed and log in caplog.text
        assert_converged(emulator, foreign, one_entry(), expected)


@pytest.mark.parametrize("kind", ["update", "move", "delete"])
@pytest.mark.parametrize(
    "fault", [Fault.dropped_before(), Fault.dropped_after(), Fault.slow(30.0), Fault.error(502)],
    ids=lambda f: f.describe(),
)  # fmt: skip
def test_ambiguous_updates_moves_and_deletes_are_re_read_before_deciding(
    kind: str, fault: Fault, expected: dict[str, Any]
) -> None:
    emulator, foreign = scenario_router()
    method = {"update": "PATCH", "move": "POST", "delete": "DELETE"}[kind]
    faults = Faults(emulator)
    faults.on_request(1, fault, methods={method})
    recorder = Recorder(emulator.transport())
    report = run(emulator, AFTER, transport=recorder)
    assert not report.failed, report.applied
    assert len(faults.injected) == 1
    calls = recorder.calls
    at = next(i for i, c in enumerate(calls) if c.method == method)
    failed, reread, after = calls[at : at + 3]
    # The very next request re-reads that one row ...
    assert (reread.method, reread.table, reread.target) == ("GET", failed.table, failed.target)
    resent = after == failed
    # ... and the write is sent again only when the re-read shows it did not take effect (a
    # move is idempotent: it is repeated whenever its rule still exists).
    assert resent == (kind == "move" or not fault.applied)
    assert [c for c in calls if c == failed] == [failed, failed] if resent else [failed]
    assert_converged(emulator, foreign, AFTER, expected)


def test_a_write_that_fails_twice_is_not_sent_a_third_time() -> None:
    emulator, foreign = fresh_router()
    Faults(emulator).fail_fraction(1.0, 0, (503,), methods={"PUT"})
    recorder = Recorder(emulator.transport())
    report = run(emulator, AFTER, transport=recorder)
    assert report.failed
    puts = [c for c in recorder.calls if c.method == "PUT"]
    # Every policy's first create is tried, re-read, tried once more; then the policy stops.
    assert len(puts) == 2 * len(AFTER.policies)
    for target in {c.target for c in puts}:
        about = [c.method for c in recorder.calls if c.target == target]
        assert about == ["PUT", "GET", "PUT"], target
    assert all(o.reason.value == "SyncFailed" for o in report.outcomes)
    assert_foreign_unchanged(emulator, foreign)


def test_a_failed_policy_does_not_misplace_its_neighbours(expected: dict[str, Any]) -> None:
    """gamma's first filter rule cannot be created, so gamma stops; epsilon's rule, planned to
    go before gamma's, goes before gamma's successor instead of failing along with it."""
    emulator, foreign = fresh_router()
    plan = run(emulator, AFTER, check=True).plan.changes
    gamma = next(i for i, c in enumerate(plan) if c.table is Table.FILTER and "gamma" in c.key)
    assert plan[gamma].action is Action.CREATE and plan[gamma + 2].destination == (
        "router-policy-sync::gamma::tcp"
    )
    Faults(emulator).fail_nth(gamma + 1, 400, "failure: simulated", methods=WRITE_METHODS)
    report = run(emulator, AFTER)
    assert {o.name for o in report.outcomes if not o.ready} == {"gamma"}
    comments = [r.get("comment", "") for r in emulator.rows(FILTER)]
    owned = [c for c in comments if OWN.owner_policy(Table.FILTER, {"comment": c})]
    assert owned == sorted(owned) and "router-policy-sync::gamma::tcp" not in owned
    marker = comments.index("router-policy-sync::marker")
    assert comments[marker - len(owned) : marker] == owned  # one ordered block above the marker
    assert not run(emulator, AFTER).failed
    assert_converged(emulator, foreign, AFTER, expected)


# -- the crash-point sweep: every write of a 50+-write scenario --------------------------------

VARIANTS: dict[str, Callable[[Faults, int], object]] = {
    # The process is killed right after write n took effect (it never sees the reply).
    "killed": lambda faults, n: faults.crash_after_write(n),
    # Write n took effect, then the connection dropped / timed out / RouterOS said 400 Session
    # closed: the run must re-read, adopt, and go on without a duplicate.
    "dropped after": lambda faults, n: faults.drop_after_write(n),
    "timed out": lambda faults, n: faults.on_write(n, Fault.slow(30.0)),
    "session closed": lambda faults, n: faults.on_write(n, Fault.session_closed()),
    # Write request n never reached the router / was refused with a 503.
    "dropped before": lambda faults, n: faults.drop_before(n, methods=WRITE_METHODS),
    "503": lambda faults, n: faults.fail_nth(n, 503, methods=WRITE_METHODS),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_crash_point_sweep_every_write(
    variant: str, sweep_writes: int, expected: dict[str, Any]
) -> None:
    stopped = 0
    for n in range(1, sweep_writes + 1):
        emulator, foreign = scenario_router()
        faults = Faults(emulator)
        VARIANTS[variant](faults, n)
        if variant == "killed":
            with pytest.raises(Crash):
                run(emulator, AFTER)
            stopped += 1
            assert faults.writes_seen == n
            assert_foreign_unchanged(emulator, foreign)
        else:
            report = run(emulator, AFTER)
            # One lost reply is recovered in the same run: no failure and no duplicate.
            assert not report.failed, (n, report.applied)
            assert duplicates(emulator) == 0, n
            stopped += len(faults.injected)
        faults.clear()
        assert not run(emulator, AFTER).failed
        assert state(emulator) == expected, (variant, n)
        assert_converged(emulator, foreign, AFTER, expected)
    assert stopped == sweep_writes  # every single write point was hit


# -- random faults ------------------------------------------------------------------------------

RANDOM_FAULTS = (
    500,
    503,
    Fault.error(400, "failure: simulated"),
    Fault.error(500, applied=True),
    Fault.dropped_before(),
    Fault.dropped_after(),
    Fault.slow(30.0),
    Fault.session_closed(),
    Fault.session_closed(applied=False),
)
SEEDS = range(40)


@pytest.mark.parametrize("start", ["scenario", "fresh"])
def test_random_faults_never_harm_and_a_clean_run_converges(
    start: str, expected: dict[str, Any]
) -> None:
    outcomes = {0: 0, 1: 0}
    for seed in SEEDS:
        emulator, foreign = scenario_router() if start == "scenario" else fresh_router()
        faults = Faults(emulator)
        faults.fail_fraction(0.10, seed, RANDOM_FAULTS)
        for attempt in range(3):
            code = exit_code(emulator, AFTER)
            outcomes[code] += 1
            assert_foreign_unchanged(emulator, foreign)
            if code == 0:
                assert duplicates(emulator) == 0, (seed, attempt)
                assert state(emulator) == expected, (seed, attempt)
        assert faults.injected, seed
        faults.clear()
        assert exit_code(emulator, AFTER) == 0
        assert_converged(emulator, foreign, AFTER, expected)
    assert outcomes[0] and outcomes[1]  # both kinds of run happened


def test_random_faults_including_401_over_many_seeds(expected: dict[str, Any]) -> None:
    for seed in range(20):
        emulator, foreign = scenario_router()
        faults = Faults(emulator).fail_fraction(0.10, 1000 + seed, (*RANDOM_FAULTS, 401))
        code = exit_code(emulator, AFTER)
        assert code in (0, 1)
        assert_foreign_unchanged(emulator, foreign)
        if code == 0:
            assert state(emulator) == expected
        faults.clear()
        assert exit_code(emulator, AFTER) == 0
        assert_converged(emulator, foreign, AFTER, expected)


# -- two runs at once --------------------------------------------------------------------------


class Turnstile:
    """Lets exactly one of several threads send a request at a time, and picks which one with a
    seeded RNG, only once every live thread is waiting to send: the interleaving of the two runs
    is then a function of the seed alone. Each seed also draws a head start for run 0 (up to a
    whole run: the second run then starts mid-way, or after the first) and how much run 0 is
    favoured afterwards, so some seeds interleave finely and others let one run race ahead."""

    def __init__(self, seed: int, parties: int) -> None:
        self._rng = random.Random(seed)
        self._head_start = self._rng.randrange(0, 80)
        self._bias = self._rng.uniform(0.05, 0.95)
        self._cond = threading.Condition()
        self._live = set(range(parties))
        self._waiting: set[int] = set()
        self._turn: int | None = None
        self.order: list[int] = []

    def _pick(self) -> None:
        if self._turn is None and self._live and self._waiting == self._live:
            waiting = sorted(self._waiting)
            favoured = self._rng.random() < self._bias or len(self.order) < self._head_start
            self._turn = waiting[0] if favoured or len(waiting) == 1 else waiting[-1]
            self.order.append(self._turn)
            self._cond.notify_all()

    def gate(self, who: int) -> None:
        with self._cond:
            self._waiting.add(who)
            self._pick()
            while self._turn != who:
                if not self._cond.wait(timeout=30):
                    raise RuntimeError("turnstile deadlock")
            self._waiting.discard(who)

    def release(self, who: int) -> None:
        with self._cond:
            self._turn = None
            self._pick()

    def finish(self, who: int) -> None:
        with self._cond:
            self._live.discard(who)
            if self._turn == who:
                self._turn = None
            self._pick()


class GatedTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, turnstile: Turnstile, who: int) -> None:
        self._inner, self._turnstile, self._who = inner, turnstile, who

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._turnstile.gate(self._who)
        try:
            return self._inner.handle_request(request)
        finally:
            self._turnstile.release(self._who)


def race(emulator: RouterOSEmulator, seed: int) -> list[int]:
    turnstile = Turnstile(seed, 2)
    errors: list[BaseException] = []

    def one(who: int) -> None:
        try:
            run(emulator, AFTER, transport=GatedTransport(emulator.transport(), turnstile, who))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            turnstile.finish(who)

    threads = [threading.Thread(target=one, args=(who,)) for who in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return turnstile.order


@pytest.mark.parametrize("start", ["scenario", "fresh"])
def test_two_runs_at_once_then_one_clean_run_converges(
    start: str, expected: dict[str, Any]
) -> None:
    made_duplicates = 0
    orders = set()
    for seed in range(25):
        emulator, foreign = scenario_router() if start == "scenario" else fresh_router()
        order = race(emulator, seed)
        orders.add(tuple(order))
        assert order.count(0) > 0 and order.count(1) > 0
        assert_foreign_unchanged(emulator, foreign)
        made_duplicates += duplicates(emulator) > 0
        assert not run(emulator, AFTER).failed
        assert_converged(emulator, foreign, AFTER, expected)
    assert len(orders) >= 15  # many different interleavings
    assert made_duplicates >= 5  # the race did make duplicates, and the clean run collapsed them


def test_two_runs_interleave_the_same_way_for_a_seed() -> None:
    first_router, _ = fresh_router()
    second_router, _ = fresh_router()
    assert race(first_router, 3) == race(second_router, 3)
    assert first_router.rows(FILTER) == second_router.rows(FILTER)


# -- the command over HTTP, with faults -----------------------------------------------------------


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(_documents(AFTER)))
    return path


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


@pytest.mark.parametrize(
    ("arm", "log"),
    [
        (lambda f: f.drop_after_write(35), "adopting"),  # a filter rule (place-before)
        (lambda f: f.on_write(45, Fault.slow(1.5)), "adopting"),  # a NAT rule
        (lambda f: f.session_closed(3), "adopting"),  # an address-list entry
        (lambda f: f.drop_before(34, methods=WRITE_METHODS), "sending it once more"),
        (lambda f: f.drop_before(2, methods={"GET"}), "retrying"),
        (lambda f: f.delay_nth(1, 1.5, methods={"GET"}), "retrying"),
        (lambda f: f.fail_nth(3, 503, methods={"GET"}), "retrying"),
    ],
    ids=["drop-after", "slow-write", "session-closed", "drop-before", "drop-get", "slow-get",
         "503-get"],
)  # fmt: skip
def test_the_command_recovers_from_one_fault_over_http(
    router: Router,
    cluster_file: Path,
    expected: dict[str, Any],
    arm: Callable[[Faults], object],
    log: str,
) -> None:
    faults = Faults(router.emulator)
    arm(faults)
    code, out, err = cli(router, cluster_file)
    assert code == 0, out + err
    assert len(faults.injected) == 1 and log in err
    assert duplicates(router.emulator) == 0
    assert state(router.emulator) == expected


def test_the_command_fails_fast_on_401_and_says_what_to_check(
    router: Router, cluster_file: Path
) -> None:
    Faults(router.emulator).fail_nth(1, 401)
    code, _, err = cli(router, cluster_file)
    assert code == 1 and "username and password" in err and "rest-api" in err
    assert sum(router.emulator.requests.values()) == 1 and router.writes() == 0


def test_the_command_fails_fast_on_a_permission_500(router: Router, cluster_file: Path) -> None:
    Faults(router.emulator).fail_nth(2, 500, "not enough permissions (9)", methods=WRITE_METHODS)
    code, out, err = cli(router, cluster_file)
    assert code == 1 and "read, write, api and rest-api" in err
    assert router.writes() == 2  # it stopped at once: no other policy tried another write
    assert "Applied: 1 done, 1 failed" in out


def test_the_command_exits_1_when_reads_keep_failing(router: Router, cluster_file: Path) -> None:
    Faults(router.emulator).fail_fraction(1.0, 0, (Fault.dropped_before(),), methods={"GET"})
    code, _, err = cli(router, cluster_file)
    assert code == 1 and "nothing was written" in err and "connection lost" in err
    assert router.writes() == 0
