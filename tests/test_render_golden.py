"""The plan as printed, pinned byte for byte: JSON (a declared, versioned contract) and text.

A `--check` pass and an applying pass over the fault scenario (creates, updates, moves and
deletes of five policies, one write refused so `apply.failed` is not empty), run through
`run_once` against the in-process emulator with the clock fixed (`now`), so every id and
timestamp is stable. The goldens live in `tests/golden/`; after an intended change of the
output, regenerate them with

    UPDATE_GOLDEN=1 python3 -m pytest -q tests/test_render_golden.py

and review the diff (a JSON change that can break a consumer also bumps FORMAT_VERSION).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from sync_job import render
from sync_job.report import RunReport
from sync_job.testing.emulator import WRITE_METHODS
from sync_job.testing.faults import Faults
from tests.support.router import REPO
from tests.support.scenario import AFTER, run, scenario_router

GOLDEN = REPO / "tests" / "golden"
# after the 19 removals, the 2nd write of the first policy: that policy fails, the rest goes on
REFUSED_WRITE = 21


def check_report() -> RunReport:
    emulator, _ = scenario_router()
    return run(emulator, AFTER, check=True)


def apply_report() -> RunReport:
    emulator, _ = scenario_router()
    Faults(emulator).fail_nth(REFUSED_WRITE, 400, "failure: simulated", methods=WRITE_METHODS)
    return run(emulator, AFTER)


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{name} differs from its golden (UPDATE_GOLDEN=1 rewrites)"


@pytest.mark.parametrize(
    ("name", "report", "check", "formatter"),
    [
        ("check.json", check_report, True, render.to_json),
        ("check.txt", check_report, True, render.to_text),
        ("apply.json", apply_report, False, render.to_json),
        ("apply.txt", apply_report, False, render.to_text),
    ],
)
def test_the_plan_matches_its_golden(
    name: str, report: Callable[[], RunReport], check: bool, formatter: Callable[..., str]
) -> None:
    assert_golden(name, formatter(report(), check=check))


def test_the_goldens_show_what_they_pin() -> None:
    """The pinned scenario really has every kind of change, fields before and after, and a
    failed write; otherwise the goldens would pin less than they seem to."""
    document = json.loads((GOLDEN / "apply.json").read_text())
    changes = document["router"]["changes"]
    assert {c["action"] for c in changes} == {"create", "update", "move", "delete"}
    update = next(c for c in changes if c["action"] == "update")
    assert update["before"] and update["after"] and update["id"]
    assert document["apply"]["failed"] and document["apply"]["skipped"]
    assert all(p["status"]["lastReconciledTime"] for p in document["policies"])
    assert "failure: simulated" in (GOLDEN / "apply.txt").read_text()
