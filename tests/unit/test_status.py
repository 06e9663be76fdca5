"""The status stage, directly: the Ready condition (`conditions`), the Events a run records
(`events`), and what `reconcile` plans and writes, with a fake RouterPolicyWriter."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sync_job.errors import KubeWriteError
from sync_job.model import Action, PolicyOutcome, Reason
from sync_job.status import reconcile
from sync_job.status.conditions import build_status, status_diff
from sync_job.status.events import EVENT_NAMESPACE, event_body, policy_events
from sync_job.status.reconcile import KubeChange

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
EARLIER = "2025-01-01T00:00:00Z"
READY = PolicyOutcome("web", Reason.SYNCED, "router in sync", 3, "10.0.0.5")
FAILING = PolicyOutcome("web", Reason.VALIDATION_FAILED, "spec.ingress: too wide", 4)


def stored(status: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message,
                 "lastTransitionTime": EARLIER}  # fmt: skip
    return {"conditions": [condition], **extra}


# -- conditions -----------------------------------------------------------------------------------


def test_build_status_says_ready_with_the_gateway_and_the_time() -> None:
    status = build_status(READY, None, NOW)
    (condition,) = status["conditions"]
    assert condition == {
        "type": "Ready",
        "status": "True",
        "reason": "Synced",
        "message": "router in sync",
        "lastTransitionTime": "2025-03-04T05:06:07Z",
        "observedGeneration": 3,
    }
    assert status["gatewayIP"] == "10.0.0.5" and status["observedGeneration"] == 3
    assert status["lastReconciledTime"] == "2025-03-04T05:06:07Z"


def test_the_transition_time_moves_only_when_ready_flips() -> None:
    same = build_status(READY, stored("True", "Synced", "older message"), NOW)
    assert same["conditions"][0]["lastTransitionTime"] == EARLIER
    flipped = build_status(FAILING, stored("True", "Synced", "router in sync"), NOW)
    assert flipped["conditions"][0]["status"] == "False"
    assert flipped["conditions"][0]["lastTransitionTime"] == "2025-03-04T05:06:07Z"
    assert flipped["gatewayIP"] is None  # merge-patch null: a stale gateway is removed


def test_status_diff_ignores_the_reconcile_time_and_nulls_and_names_what_changed() -> None:
    wanted = build_status(READY, None, NOW)
    previous = {**wanted, "lastReconciledTime": EARLIER}
    assert status_diff(wanted, previous) == []
    assert status_diff({**wanted, "gatewayIP": None}, {**previous, "gatewayIP": None}) == []
    moved = status_diff({**wanted, "gatewayIP": "10.0.0.9"}, previous)
    assert moved == ["replace /gatewayIP '10.0.0.9'"]
    assert status_diff(wanted, None)  # nothing stored yet: everything is new


# -- events -----------------------------------------------------------------------------------


def test_router_changes_make_one_normal_event_with_the_counts() -> None:
    applied = {"web": Counter({Action.CREATE: 2, Action.DELETE: 1})}
    previous = {"web": build_status(READY, None, NOW)}
    assert policy_events([READY], applied, previous) == [
        ("web", "Normal", "RouterUpdated", "router objects created 2, deleted 1")
    ]


def test_a_changed_condition_makes_an_event_warning_when_not_ready() -> None:
    assert policy_events([FAILING], {}, {"web": stored("True", "Synced", "router in sync")}) == [
        ("web", "Warning", "ValidationFailed", "spec.ingress: too wide")
    ]
    assert policy_events([READY], {}, {"web": None}) == [
        ("web", "Normal", "Synced", "router in sync")
    ]


def test_a_policy_failing_the_same_way_again_records_no_new_warning() -> None:
    previous = {"web": stored("False", "ValidationFailed", "spec.ingress: too wide")}
    assert policy_events([FAILING], {}, previous) == []
    assert policy_events([FAILING], {"web": Counter()}, previous) == []  # no changes: no event


def test_event_body_is_a_core_v1_event_on_the_cluster_scoped_object() -> None:
    router_policy = {
        "apiVersion": "routerpolicies.example/v1",
        "metadata": {"name": "web", "uid": "u-1"},
    }
    body = event_body(router_policy, "Warning", "SyncFailed", "x" * 2000, NOW)
    assert body["metadata"] == {"generateName": "web.", "namespace": EVENT_NAMESPACE}
    assert EVENT_NAMESPACE == "default"
    assert body["involvedObject"] == {
        "apiVersion": "routerpolicies.example/v1",
        "kind": "RouterPolicy",
        "name": "web",
        "uid": "u-1",
    }
    assert (body["type"], body["reason"], body["count"]) == ("Warning", "SyncFailed", 1)
    assert body["message"] == "x" * 1024  # the API server refuses longer messages
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2025-03-04T05:06:07Z"
    assert body["source"] == {"component": "router-policy-sync"}


# -- reconcile: what changes ------------------------------------------------------------------


def cnp(name: str, uid: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid}}


def rp(name: str, owner_uid: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {"name": name, "uid": f"rp-{name}", "ownerReferences": [{"uid": owner_uid}]}
    return {"metadata": meta, "status": status}


def test_kube_changes_create_missing_replace_foreign_owned_and_delete_orphans() -> None:
    policies = [cnp("a", "u-a"), cnp("b", "u-b"), cnp("c", "u-c")]
    existing = {"b": rp("b", "u-b"), "c": rp("c", "u-old"), "z": rp("z", "u-z")}
    assert reconcile.kube_changes(policies, existing) == [
        KubeChange(Action.CREATE, "a"),
        KubeChange(Action.DELETE, "c", ("owned by an older policy",)),
        KubeChange(Action.CREATE, "c"),
        KubeChange(Action.DELETE, "z", ("its Cilium policy is gone or no longer annotated",)),
    ]
    assert reconcile.kube_changes(policies, None) == []  # from a file: no RouterPolicies at all


def test_build_statuses_start_afresh_for_a_recreated_object() -> None:
    existing = {"web": rp("web", "u", stored("True", "Synced", "router in sync"))}
    kept = reconcile.build_statuses([READY], existing, [], NOW)
    assert kept["web"]["conditions"][0]["lastTransitionTime"] == EARLIER
    recreated = reconcile.build_statuses(
        [READY], existing, [KubeChange(Action.DELETE, "web"), KubeChange(Action.CREATE, "web")], NOW
    )
    assert recreated["web"]["conditions"][0]["lastTransitionTime"] == "2025-03-04T05:06:07Z"


def test_status_drift_reports_changed_statuses_but_not_objects_being_created() -> None:
    statuses = {"web": build_status(READY, None, NOW), "new": build_status(READY, None, NOW)}
    unchanged = {**statuses["web"], "lastReconciledTime": EARLIER}
    existing = {"web": rp("web", "u", unchanged)}
    creating = [KubeChange(Action.CREATE, "new")]
    assert reconcile.status_drift(statuses, existing, creating) == []
    existing["web"] = rp("web", "u", {**unchanged, "gatewayIP": "10.0.0.1"})
    (drift,) = reconcile.status_drift(statuses, existing, creating)
    assert (drift.action, drift.name) == (Action.UPDATE, "web")
    assert drift.detail == ("replace /gatewayIP '10.0.0.5'",)


HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("age", "stamp", "due"),
    [
        (timedelta(minutes=5), None, False),  # unchanged and fresh: no write
        (timedelta(hours=3), None, True),  # older than twice the refresh: due for any name
        (timedelta(minutes=59), None, False),  # younger than the refresh: never due
        (None, "not a time", True),  # unreadable: rewrite it
        (None, "", True),  # missing: write it
        (None, "2025-03-04T05:01:07", False),  # naive: read as UTC, so 5 minutes old
        (None, "2025-03-04T02:06:07", True),  # naive, 3 hours old
    ],
)
def test_status_due_refreshes_unchanged_statuses_only_when_old(
    age: timedelta | None, stamp: str | None, due: bool
) -> None:
    status = build_status(READY, None, NOW)
    if stamp is None:
        assert age is not None
        stamp = (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reconcile.status_due("web", status, {**status, "lastReconciledTime": stamp}, NOW,
                                HOUR) is due  # fmt: skip


def test_status_due_when_anything_else_changed_even_if_just_written() -> None:
    status = build_status(READY, None, NOW)
    assert reconcile.status_due("web", status, {**status, "gatewayIP": "10.9.9.9"}, NOW, HOUR)
    assert reconcile.status_due("web", status, None, NOW, HOUR)


def test_the_refresh_is_spread_between_one_and_two_refresh_periods_per_name() -> None:
    status = build_status(READY, None, NOW)

    def first_due(name: str) -> int:
        for minutes in range(0, 24 * 60, 5):
            written = (NOW - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if reconcile.status_due(name, status, {**status, "lastReconciledTime": written},
                                    NOW, HOUR):  # fmt: skip
                return minutes
        raise AssertionError(name)

    dues = {first_due(f"policy-{i}") for i in range(20)}
    assert all(60 <= m <= 125 for m in dues) and len(dues) > 5  # spread, not all at once


# -- reconcile.write with a fake writer ---------------------------------------------------------


@dataclass
class FakeWriter:
    """A RouterPolicyWriter that records every call and raises for the calls named in `fail`."""

    fail: set[tuple[str, str]] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _call(self, kind: str, name: str) -> None:
        self.calls.append((kind, name))
        if (kind, name) in self.fail:
            raise KubeWriteError(f"cannot {kind} {name}: 500 boom")

    def create(self, policy: dict[str, Any]) -> dict[str, Any]:
        name = policy["metadata"]["name"]
        self._call("create", name)
        return rp(name, policy["metadata"]["uid"])

    def delete(self, name: str, uid: str) -> None:
        self._call("delete", f"{name} uid={uid}")

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        self._call("status", name)

    def create_event(self, body: dict[str, Any]) -> None:
        self._call("event", f"{body['involvedObject']['name']} {body['reason']}")


def write(writer: FakeWriter, outcomes: list[PolicyOutcome], existing: dict[str, Any],
          applied: dict[str, Counter[Action]] | None = None) -> list[str]:  # fmt: skip
    policies = [cnp(o.name, f"u-{o.name}") for o in outcomes]
    changes = reconcile.kube_changes(policies, existing)
    statuses = reconcile.build_statuses(outcomes, existing, changes, NOW)
    return reconcile.write(
        writer,  # type: ignore[arg-type]
        policies=policies,
        existing=existing,
        changes=changes,
        statuses=statuses,
        outcomes=outcomes,
        applied=applied or {},
        moment=NOW,
        refresh=HOUR,
    )


OUTCOMES = [
    PolicyOutcome("a", Reason.SYNCED, "router in sync", 1, "10.0.0.5"),
    PolicyOutcome("b", Reason.SYNCED, "router in sync", 1, "10.0.0.6"),
    PolicyOutcome("c", Reason.DISCOVERY_FAILED, "no gateway", 1),
]


def test_write_creates_deletes_patches_and_records_events() -> None:
    writer = FakeWriter()
    existing = {"b": rp("b", "u-b"), "z": rp("z", "u-z")}
    errors = write(writer, OUTCOMES, existing, {"a": Counter({Action.CREATE: 3})})
    assert errors == []
    assert writer.calls == [
        ("create", "a"),
        ("create", "c"),
        ("delete", "z uid=rp-z"),
        ("status", "a"),
        ("status", "b"),
        ("status", "c"),
        ("event", "a RouterUpdated"),
        ("event", "a Synced"),
        ("event", "b Synced"),
        ("event", "c DiscoveryFailed"),
    ]


def test_an_unchanged_fresh_status_is_not_written_and_records_no_event() -> None:
    status = build_status(OUTCOMES[1], None, NOW - timedelta(minutes=1))
    writer = FakeWriter()
    assert write(writer, [OUTCOMES[1]], {"b": rp("b", "u-b", status)}) == []
    assert writer.calls == []


@pytest.mark.parametrize(
    "failing", [("create", "a"), ("delete", "z uid=rp-z"), ("status", "b"), ("event", "b Synced")]
)
def test_one_failed_write_never_stops_the_others(failing: tuple[str, str]) -> None:
    everything = FakeWriter()
    existing = {"b": rp("b", "u-b"), "z": rp("z", "u-z")}
    write(everything, OUTCOMES, existing)
    writer = FakeWriter(fail={failing})
    errors = write(writer, OUTCOMES, existing)
    assert errors == [f"cannot {failing[0]} {failing[1]}: 500 boom"]
    if failing == ("create", "a"):
        # A RouterPolicy that could not be created gets no status and no Event; the rest do.
        others = [c for c in everything.calls if c[1].split()[0] != "a"]
        assert writer.calls == [("create", "a"), *others]
    else:
        assert writer.calls == everything.calls  # every other write still happened
