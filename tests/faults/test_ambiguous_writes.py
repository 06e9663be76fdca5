"""Writes are never blindly retried: after an ambiguous failure the applier re-reads before
deciding whether to send the write once more.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync_job.model import Action
from sync_job.router.tables import Table
from sync_job.testing.emulator import WRITE_METHODS
from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    ADDRESS_LIST,
    FILTER,
    assert_foreign_unchanged,
)
from tests.support.scenario import (
    AFTER,
    OWN,
    Recorder,
    assert_converged,
    desired_state,
    fresh_router,
    one_entry,
    run,
    scenario_router,
)


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
    calls = recorder.calls[4:]  # after the three table reads and /system/resource
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
    # Parenthesised: without them Python reads `(A == B) if resent else [failed]`, always true.
    assert [c for c in calls if c == failed] == ([failed, failed] if resent else [failed])
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
    assert plan[gamma].action is Action.CREATE
    # a neighbour's rule, written after gamma's group, is planned to go before gamma's rule
    assert any(
        "gamma" not in c.key and c.destination == "router-policy-sync::gamma::tcp"
        for c in plan[gamma:]
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
