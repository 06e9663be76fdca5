"""Fixtures of the fault tests: no log record ever holds the password; the converged state and
the sweep's write count, computed once per module; the scenario cluster as a file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync_job.model import Action
from sync_job.testing.faults import Faults
from tests.support.router import PASSWORD
from tests.support.scenario import AFTER, _documents, desired_state, run, scenario_router


@pytest.fixture(autouse=True)
def no_password_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of every test here, at debug level, is checked for the password."""
    caplog.set_level(logging.DEBUG)
    yield
    assert PASSWORD not in caplog.text


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


@pytest.fixture
def cluster_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(_documents(AFTER)))
    return path
