"""Random faults (10% of requests, many seeds): each run converges or fails (exit 1), never
touches a foreign object, and the next clean run converges.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    assert_foreign_unchanged,
)
from tests.support.scenario import (
    AFTER,
    assert_converged,
    duplicates,
    exit_code,
    fresh_router,
    scenario_router,
    state,
)

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
    codes, stopped = [], 0
    for seed in range(20):
        emulator, foreign = scenario_router()
        faults = Faults(emulator).fail_fraction(0.10, 1000 + seed, (*RANDOM_FAULTS, 401))
        code = exit_code(emulator, AFTER)
        codes.append(code)
        assert_foreign_unchanged(emulator, foreign)
        unauthorised = [i for i in faults.injected if i.fault == "401"]
        if unauthorised:
            stopped += 1
            # A 401 stops the whole run at once: exit 1, and it was the last request sent.
            assert code == 1, seed
            assert unauthorised[0].request == sum(emulator.requests.values()), seed
        else:
            # Without one, the run exits 0 exactly when it converged in spite of the faults.
            converged = state(emulator) == expected and duplicates(emulator) == 0
            assert code == (0 if converged else 1), seed
        faults.clear()
        assert exit_code(emulator, AFTER) == 0
        assert_converged(emulator, foreign, AFTER, expected)
    print("exit codes by seed:", codes, "stopped by a 401:", stopped)
    assert 0 < stopped < 20 and 0 in codes  # both branches above were taken
