"""The command over HTTP against the emulator with one fault armed: it recovers, or fails fast
saying what to check.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync_job.testing.emulator import WRITE_METHODS
from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    Router,
)
from tests.support.scenario import (
    cli,
    duplicates,
    state,
)


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
