"""Progress of a large plan (issue 19's item, in the applier): more than a screenful of changes
logs `applied N of M` every tenth or every PROGRESS_EVERY seconds of the client's clock, and
each change only at debug level; a small plan logs each change at info level."""

from __future__ import annotations

import logging
from itertools import pairwise

import pytest

from sync_job.model import Action
from sync_job.router.apply import PROGRESS_EVERY, apply
from sync_job.router.plan import Change, Plan
from sync_job.router.tables import Table
from tests.unit.test_apply import ScriptedWriter


def entries(n: int) -> Plan:
    return Plan(tuple(
        Change(action=Action.CREATE, table=Table.ADDRESS_LIST, key=f"k{i}", policy=f"p{i % 3}",
               reason="missing",
               after={"list": "router-policy-sync::p", "address": f"10.0.{i // 250}.{i % 250}"})
        for i in range(n)
    ))  # fmt: skip


def info(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


def test_a_small_plan_logs_each_change(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sync_job.router.apply")
    apply(entries(50), ScriptedWriter())  # type: ignore[arg-type]
    lines = info(caplog)
    assert len(lines) == 50 and lines[0].startswith("create ipv4 address-list k0")
    assert not any(line.startswith("applied") for line in lines)


def test_a_large_plan_logs_every_tenth_and_once_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="sync_job.router.apply")
    apply(entries(4500), ScriptedWriter())  # type: ignore[arg-type]
    assert info(caplog) == [f"applied {n * 450:,} of 4,500" for n in range(1, 11)] + [
        "applied 4,500 of 4,500"
    ]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 4500


def test_a_slow_large_plan_logs_every_few_seconds(caplog: pytest.LogCaptureFixture) -> None:
    """Each change takes 3 s on the client's clock: a line every PROGRESS_EVERY seconds, besides
    the tenths."""
    caplog.set_level(logging.INFO, logger="sync_job.router.apply")
    left = [10_000.0]

    class Slow(ScriptedWriter):
        def create(self, *args: object, **kwargs: object) -> dict[str, str]:
            left[0] -= 3.0
            return super().create(*args, **kwargs)  # type: ignore[arg-type]

    apply(entries(100), Slow(), time_left=lambda: left[0])  # type: ignore[arg-type]
    every = int(PROGRESS_EVERY // 3) + 1  # changes between two timed lines
    counts = [int(line.split()[1].replace(",", "")) for line in info(caplog)]
    assert counts[:3] == [every, 2 * every, 10]  # two timed lines, then the first tenth
    assert all(b - a <= every for a, b in pairwise(counts))
    assert counts[-1] == 100
