"""401/403 and the permission 500s fail fast, saying what to check, and stop every policy."""

from __future__ import annotations

import pytest

from sync_job.errors import RouterAuthError
from sync_job.router.tables import Table
from sync_job.testing.emulator import WRITE_METHODS
from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    assert_foreign_unchanged,
)
from tests.support.scenario import (
    AFTER,
    FakeClock,
    fresh_router,
    reader,
    run,
)


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
