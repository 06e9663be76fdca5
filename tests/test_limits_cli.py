"""The caps end to end: `--max-*` flags and their env twins, against the RouterOS emulator on
127.0.0.1 with the demo cluster (one policy: 3 sources, a Service with 3 ports: 8 objects)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from tests.support.router import Router, run_cli

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def sync(router: Router, path: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    result = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, "--output", "json",
        *extra, env=env,
    )  # fmt: skip
    return result.code, json.loads(result.stdout)


@pytest.mark.parametrize(
    ("flag", "env", "value", "says"),
    [
        ("--max-sources-per-policy", "MAX_SOURCES_PER_POLICY", "2", "3 sources, more than"),
        ("--max-ports-per-policy", "MAX_PORTS_PER_POLICY", "2", "has 3 ports, more than"),
        ("--max-router-objects", "MAX_ROUTER_OBJECTS", "7", "8 router objects would make 8"),
    ],
)
def test_a_policy_over_a_cap_is_validation_failed_and_nothing_is_written(
    router: Router, example: Path, flag: str, env: str, value: str, says: str
) -> None:
    for how in ((flag, value), ()):
        _, out = sync(router, example, *how, env={} if how else {env: value})
        (policy,) = out["policies"]
        assert policy["reason"] == "ValidationFailed", policy
        assert says in policy["message"] and f"{flag} (" in policy["message"], policy
        assert router.writes() == 0
    code, out = sync(router, example, flag, str(int(value) + 1))
    assert code == 0
    assert [p["reason"] for p in out["policies"]] == ["Synced"]
