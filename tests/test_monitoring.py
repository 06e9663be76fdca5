"""The shipped alerts and dashboard (manifests/components/monitoring, the chart's
`monitoring.*`) name only metrics the job exports, and every expression parses as PromQL.

The exported names come from the metrics code itself (`sync_job.metrics.METRIC_NAMES`, which
tests/test_metrics.py checks against a real run's textfile). Rendering and server-side dry-run:
tests/e2e/test_monitoring_manifests.py.
"""

from __future__ import annotations

import pytest

from sync_job.metrics import METRIC_NAMES
from tests.support.monitoring import (
    dashboard_queries,
    load_dashboard,
    load_rule,
    rule_expressions,
    selected_metrics,
)

RULES = rule_expressions(load_rule())
QUERIES = dashboard_queries(load_dashboard())


def test_the_alerts_the_issue_asks_for_are_there() -> None:
    assert set(RULES) == {
        "RouterPolicySyncNoRecentSuccess",
        "RouterPolicySyncNoSuccessRecorded",
        "RouterPolicySyncPolicyNotReady",
        "RouterPolicySyncRouterWritesFailing",
        "RouterPolicySyncObjectsNotKept",
        "RouterPolicySyncRemovalsHeldBack",
    }
    assert selected_metrics(RULES["RouterPolicySyncRemovalsHeldBack"]) == {
        "router_policy_sync_router_removals_held_back"
    }
    assert selected_metrics(RULES["RouterPolicySyncNoRecentSuccess"]) == {
        "router_policy_sync_last_success_timestamp_seconds"
    }
    assert selected_metrics(RULES["RouterPolicySyncPolicyNotReady"]) == {
        "router_policy_sync_policies"
    }
    assert selected_metrics(RULES["RouterPolicySyncRouterWritesFailing"]) == {
        "router_policy_sync_router_changes_failed"
    }
    assert selected_metrics(RULES["RouterPolicySyncObjectsNotKept"]) == {
        "router_policy_sync_router_objects_not_kept"
    }


@pytest.mark.parametrize("alert", sorted(RULES))
def test_every_alert_expression_parses_and_names_exported_metrics(alert: str) -> None:
    names = selected_metrics(RULES[alert])
    assert names, f"{alert} selects no metric"
    assert names <= METRIC_NAMES, f"{alert} uses {names - METRIC_NAMES}, which no run exports"


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_every_dashboard_query_parses_and_names_exported_metrics(query: str) -> None:
    names = selected_metrics(QUERIES[query])
    assert names, f"{query} selects no metric"
    assert names <= METRIC_NAMES, f"{query} uses {names - METRIC_NAMES}, which no run exports"


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    used = {name for expr in QUERIES.values() for name in selected_metrics(expr)}
    assert {
        "router_policy_sync_last_success_timestamp_seconds",
        "router_policy_sync_run_duration_seconds",
        "router_policy_sync_policies",
        "router_policy_sync_router_changes",
        "router_policy_sync_router_requests",
    } <= used
    assert any("sum by (reason)" in expr for expr in QUERIES.values())  # policies by reason


def test_a_broken_expression_or_an_unknown_metric_is_caught() -> None:
    """The checks above can fail: the parser refuses bad PromQL, and a made-up name shows."""
    with pytest.raises(ValueError):
        selected_metrics("sum by (reason (router_policy_sync_policies)")
    assert selected_metrics("rate(router_policy_sync_runs_total[5m])") - METRIC_NAMES
