"""Shared fixtures: a RouterOS emulator seeded like a real router, served on 127.0.0.1.

Every test that uses `router` gets, at teardown, a check that the foreign objects it seeded are
all still there, unchanged, and (for filter rules) in the same relative order. The helpers live
in `tests/support/`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import PASSWORD, Router, assert_foreign_unchanged, seed_router


@pytest.fixture
def router() -> Iterator[Router]:
    emulator = RouterOSEmulator("admin", PASSWORD)
    foreign, marker_id = seed_router(emulator)
    with emulator.serve() as url:
        yield Router(emulator, url, foreign, marker_id)
    assert_foreign_unchanged(emulator, foreign)
