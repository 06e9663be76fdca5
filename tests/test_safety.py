"""Safety properties of one pass, through `run_once` against the in-process RouterOS emulator.

- A policy that synced and then fails validation keeps exactly its router objects (its rows are
  byte-identical after the run), and the other policies still sync.
- A policy that fails discovery keeps its objects too; a policy that is gone loses them.

(Concurrent runs: `tests/faults/test_racing_runs.py`; usage errors: `tests/test_cli.py`.)
"""

from __future__ import annotations

import copy
from typing import Any

from sync_job.model import Family, Reason
from sync_job.router.tables import tables_of
from sync_job.source.snapshot import ClusterSnapshot
from tests.support.router import assert_foreign_unchanged
from tests.support.scenario import OWN, Policy, fresh_router, run, snapshot

IPV4_TABLES = tables_of([Family.IPV4])

ALPHA = Policy("alpha", ("203.0.113.10", "203.0.113.11"), (("TCP", 80), ("UDP", 53)), "10.0.0.5")
BETA = Policy("beta", ("198.51.100.20",), (("TCP", 22),), "10.0.0.6")
CLUSTER = snapshot(ALPHA, BETA)


def owned_rows(emulator: Any, policy: str) -> dict[str, list[dict[str, str]]]:
    """Every row `policy` owns, table by table, exactly as the router holds it (ids included)."""
    return {
        table.label: [
            dict(row)
            for row in emulator.rows(table.value)
            if OWN.owner_policy(table, row) == policy
        ]
        for table in IPV4_TABLES
    }


def with_alpha(change: Any) -> ClusterSnapshot:
    raw = copy.deepcopy([dict(p) for p in CLUSTER.policies])
    change(next(p for p in raw if p["metadata"]["name"] == "alpha"))
    return ClusterSnapshot(raw, CLUSTER.pods, CLUSTER.services)


def too_wide(policy: dict[str, Any]) -> None:
    policy["spec"]["ingress"][0]["fromCIDR"] = ["198.51.100.0/24"]


def no_gateway(policy: dict[str, Any]) -> None:
    policy["spec"]["endpointSelector"] = {"matchLabels": {"app": "nobody"}}


def test_a_policy_that_synced_then_fails_validation_keeps_exactly_its_router_objects() -> None:
    emulator, foreign = fresh_router()
    assert not run(emulator, CLUSTER).failed
    kept = owned_rows(emulator, "alpha")
    assert all(kept.values()), kept  # it had an entry, a filter rule and a NAT rule at least
    report = run(emulator, with_alpha(too_wide))
    alpha = next(o for o in report.outcomes if o.name == "alpha")
    assert alpha.reason is Reason.VALIDATION_FAILED and "198.51.100.0/24" in alpha.message
    assert [c for c in report.plan.changes if c.policy == "alpha"] == []
    assert owned_rows(emulator, "alpha") == kept  # byte-identical, ids and order included
    assert next(o for o in report.outcomes if o.name == "beta").ready
    assert_foreign_unchanged(emulator, foreign)


def test_a_policy_that_fails_discovery_keeps_its_objects_and_a_gone_one_loses_them() -> None:
    emulator, _ = fresh_router()
    assert not run(emulator, CLUSTER).failed
    kept = owned_rows(emulator, "alpha")
    report = run(emulator, with_alpha(no_gateway))
    alpha = next(o for o in report.outcomes if o.name == "alpha")
    assert alpha.reason is Reason.DISCOVERY_FAILED, alpha
    assert owned_rows(emulator, "alpha") == kept
    # Contrast: once the policy is gone (not merely failing), its objects are removed.
    assert not run(emulator, snapshot(BETA)).failed
    assert owned_rows(emulator, "alpha") == {table.label: [] for table in IPV4_TABLES}
