"""Crash-point sweep: a 50+-write scenario is stopped at EVERY write (killed, or the reply lost in
five different ways) and one clean run then converges to exactly the fresh-run state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sync_job.testing.emulator import WRITE_METHODS, Crash
from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    FILTER,
    assert_foreign_unchanged,
)
from tests.support.scenario import (
    AFTER,
    assert_converged,
    duplicates,
    run,
    scenario_router,
    state,
)


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
