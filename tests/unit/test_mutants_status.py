"""RouterPolicy status, Events and the reconcile plan, as pure functions of their inputs (the
clock is a parameter), plus `reconcile.write` against a recording writer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from sync_job.errors import KubeWriteError
from sync_job.model import Action, PolicyOutcome, Reason
from sync_job.status import reconcile
from sync_job.status.conditions import build_status, status_diff
from sync_job.status.events import COMPONENT, EVENT_NAMESPACE, event_body, policy_events
from sync_job.status.reconcile import (
    KubeChange,
    build_statuses,
    kube_changes,
    object_name,
    status_drift,
    status_due,
)
from sync_job.status.writes import RouterPolicyWriter

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
EARLIER = "2026-01-01T00:00:00Z"
READY = PolicyOutcome("web", Reason.SYNCED, "in sync", 4, "10.0.0.5", "default/web")
FAILED = PolicyOutcome("web", Reason.SYNC_FAILED, "router write failed: x", 4)


def ready_status(
    state: str = "True", reason: str = "Synced", message: str = "in sync", **extra: Any
) -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": state,
                "reason": reason,
                "message": message,
                "lastTransitionTime": EARLIER,
                "observedGeneration": 4,
            }
        ],
        **extra,
    }


# --- conditions ------------------------------------------------------------------------------


def test_a_first_status_is_complete_and_stamped_now() -> None:
    assert build_status(READY, None, NOW) == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Synced",
                "message": "in sync",
                "lastTransitionTime": "2026-03-04T05:06:07Z",
                "observedGeneration": 4,
            }
        ],
        "gatewayIP": "10.0.0.5",
        "gatewayIPv6": None,
        "gatewayService": "default/web",
        "observedGeneration": 4,
        "lastReconciledTime": "2026-03-04T05:06:07Z",
    }


def test_a_failed_policy_is_not_ready_and_removes_its_gateway() -> None:
    status = build_status(FAILED, None, NOW)
    assert status["conditions"][0]["status"] == "False"
    assert status["conditions"][0]["reason"] == "SyncFailed"
    assert status["gatewayIP"] is None
    assert status["gatewayService"] is None


def test_transition_time_moves_only_when_ready_flips() -> None:
    same = build_status(READY, ready_status("True", "Other", "changed"), NOW)
    assert same["conditions"][0]["lastTransitionTime"] == EARLIER
    flipped = build_status(READY, ready_status("False"), NOW)
    assert flipped["conditions"][0]["lastTransitionTime"] == "2026-03-04T05:06:07Z"
    failed = build_status(FAILED, ready_status("False"), NOW)
    assert failed["conditions"][0]["lastTransitionTime"] == EARLIER


def test_only_the_ready_condition_counts_and_junk_is_ignored() -> None:
    previous = {
        "conditions": [
            "junk",
            {"type": "Other", "status": "True", "lastTransitionTime": "1999-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": EARLIER},
        ]
    }
    assert build_status(READY, previous, NOW)["conditions"][0]["lastTransitionTime"] == EARLIER
    for junk in ({"conditions": None}, {}, {"conditions": [{"type": "Ready"}]}):
        stamp = build_status(READY, junk, NOW)["conditions"][0]["lastTransitionTime"]
        assert stamp == "2026-03-04T05:06:07Z"
    # same state but no recorded time: now
    no_time = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert build_status(READY, no_time, NOW)["conditions"][0]["lastTransitionTime"] == (
        "2026-03-04T05:06:07Z"
    )


def test_status_diff_ignores_the_reconcile_time_and_nulls() -> None:
    status = build_status(READY, None, NOW)
    later = build_status(READY, status, NOW + timedelta(hours=1))
    assert status_diff(later, status) == []
    assert status_diff({"a": 1, "gatewayIP": None}, {"a": 1}) == []
    assert status_diff({"a": 1}, {"a": 1, "gatewayIP": None}) == []


def test_status_diff_describes_each_operation() -> None:
    assert status_diff({"a": 2, "b": "x"}, {"a": 1, "c": 3}) == [
        "remove /c",
        "add /b 'x'",
        "replace /a 2",
    ]
    assert status_diff({"a": 1}, None) == ["add /a 1"]


# --- events ----------------------------------------------------------------------------------


def test_router_changes_make_a_normal_event_with_counts_in_a_fixed_order() -> None:
    applied = {"web": Counter({Action.DELETE: 1, Action.CREATE: 2, Action.MOVE: 3})}
    events = policy_events([READY], applied, {"web": ready_status()})
    assert events == [
        ("web", "Normal", "RouterUpdated", "router objects created 2, moved 3, deleted 1")
    ]
    updated = policy_events([READY], {"web": Counter({Action.UPDATE: 1})}, {"web": ready_status()})
    assert updated == [("web", "Normal", "RouterUpdated", "router objects updated 1")]


def test_no_router_change_and_the_same_condition_make_no_event() -> None:
    assert policy_events([READY], {"web": Counter()}, {"web": ready_status()}) == []
    assert (
        policy_events([READY], {"other": Counter({Action.CREATE: 1})}, {"web": ready_status()})
        == []
    )


def test_a_changed_condition_makes_one_event_warning_when_not_ready() -> None:
    assert policy_events([READY], {}, {"web": ready_status("False", "SyncFailed", "x")}) == [
        ("web", "Normal", "Synced", "in sync")
    ]
    assert policy_events([FAILED], {}, {"web": ready_status()}) == [
        ("web", "Warning", "SyncFailed", "router write failed: x")
    ]
    # a new message with the same reason is a change too; no previous status is one
    assert policy_events([READY], {}, {"web": ready_status(message="old")}) == [
        ("web", "Normal", "Synced", "in sync")
    ]
    assert policy_events([READY], {}, {}) == [("web", "Normal", "Synced", "in sync")]


def test_a_failure_repeated_run_after_run_is_not_repeated_as_an_event() -> None:
    previous = {"web": ready_status("False", "SyncFailed", "router write failed: x")}
    assert policy_events([FAILED], {}, previous) == []
    # conditions that are not Ready, or junk, do not count
    odd = {
        "conditions": [
            "junk",
            {"type": "Other", "reason": "SyncFailed", "message": "router write failed: x"},
        ]
    }
    assert policy_events([FAILED], {}, {"web": odd}) == [
        ("web", "Warning", "SyncFailed", "router write failed: x")
    ]
    assert policy_events([READY], {}, {"web": {"conditions": None}}) == [
        ("web", "Normal", "Synced", "in sync")
    ]


def test_both_events_in_order() -> None:
    events = policy_events([FAILED], {"web": Counter({Action.CREATE: 1})}, {})
    assert [event[2] for event in events] == ["RouterUpdated", "SyncFailed"]


def test_event_body_is_a_core_v1_event_of_the_routerpolicy() -> None:
    policy = {
        "apiVersion": "homelab-helper.benfiola.com/v1",
        "metadata": {"name": "web", "uid": "u-1"},
    }
    body = event_body(policy, "Warning", "SyncFailed", "m" * 2000, NOW)
    assert body == {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "web.", "namespace": "default"},
        "involvedObject": {
            "apiVersion": "homelab-helper.benfiola.com/v1",
            "kind": "RouterPolicy",
            "name": "web",
            "uid": "u-1",
        },
        "type": "Warning",
        "reason": "SyncFailed",
        "message": "m" * 1024,
        "firstTimestamp": "2026-03-04T05:06:07Z",
        "lastTimestamp": "2026-03-04T05:06:07Z",
        "count": 1,
        "source": {"component": "router-policy-sync"},
        "reportingComponent": "router-policy-sync",
    }
    assert EVENT_NAMESPACE == "default"
    assert COMPONENT == "router-policy-sync"
    assert event_body({}, "Normal", "r", "m", NOW)["metadata"]["generateName"] == "None."


# --- reconcile: what changes -----------------------------------------------------------------


def policy(name: str, uid: str | None = "u-1") -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid}}


def router_policy(name: str, owner_uid: str = "u-1", status: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"rp-{name}"}
    meta["ownerReferences"] = [{"uid": "other"}, {"uid": owner_uid}]
    return {"metadata": meta, "status": status}


def test_object_name() -> None:
    assert object_name({"metadata": {"name": "web"}}) == "web"
    assert object_name({"metadata": None}) == ""
    assert object_name({}) == ""


def test_kube_changes_create_missing_and_delete_orphans_sorted() -> None:
    existing = {
        "web": router_policy("web"),
        "z-gone": router_policy("z-gone"),
        "a-gone": router_policy("a-gone"),
    }
    changes = kube_changes([policy("web"), policy("new"), policy("b-new")], existing)
    assert changes == [
        KubeChange(Action.CREATE, "b-new"),
        KubeChange(Action.CREATE, "new"),
        KubeChange(Action.DELETE, "a-gone", ("its Cilium policy is gone or no longer annotated",)),
        KubeChange(Action.DELETE, "z-gone", ("its Cilium policy is gone or no longer annotated",)),
    ]


def test_a_routerpolicy_of_an_older_policy_is_replaced() -> None:
    existing = {"web": router_policy("web", owner_uid="u-old")}
    assert kube_changes([policy("web", "u-new")], existing) == [
        KubeChange(Action.DELETE, "web", ("owned by an older policy",)),
        KubeChange(Action.CREATE, "web"),
    ]
    # no uid known (from a file): nothing to compare
    assert kube_changes([policy("web", None)], existing) == []
    unowned = {"web": {"metadata": {"name": "web"}}}
    assert kube_changes([policy("web")], unowned) == [
        KubeChange(Action.DELETE, "web", ("owned by an older policy",)),
        KubeChange(Action.CREATE, "web"),
    ]
    assert kube_changes([policy("web")], {"web": {"metadata": None}})[0].action is Action.DELETE


def test_no_routerpolicies_read_means_no_changes() -> None:
    assert kube_changes([policy("web")], None) == []


def test_build_statuses_starts_a_recreated_routerpolicy_afresh() -> None:
    existing = {"web": router_policy("web", status=ready_status("True"))}
    kept = build_statuses([READY], existing, [], NOW)
    assert kept["web"]["conditions"][0]["lastTransitionTime"] == EARLIER
    recreated = build_statuses([READY], existing, [KubeChange(Action.DELETE, "web")], NOW)
    assert recreated["web"]["conditions"][0]["lastTransitionTime"] == "2026-03-04T05:06:07Z"
    created = build_statuses([READY], existing, [KubeChange(Action.CREATE, "web")], NOW)
    assert created["web"]["conditions"][0]["lastTransitionTime"] == EARLIER
    assert build_statuses([READY], None, [], NOW) == {"web": build_status(READY, None, NOW)}
    assert build_statuses([READY], {"web": {}}, [], NOW) == {"web": build_status(READY, None, NOW)}


def test_status_drift_lists_what_would_change_except_recreated_objects() -> None:
    current = build_status(READY, None, NOW)
    existing = {
        "web": router_policy("web", status=current),
        "dns": router_policy("dns", status=None),
    }
    wanted = {"web": build_status(FAILED, current, NOW), "dns": current}
    drift = status_drift(wanted, existing, [])
    assert [(d.action, d.name) for d in drift] == [(Action.UPDATE, "web"), (Action.UPDATE, "dns")]
    assert "replace /conditions/0/reason 'SyncFailed'" in drift[0].detail
    assert (
        status_drift(
            wanted, existing, [KubeChange(Action.CREATE, "web"), KubeChange(Action.DELETE, "dns")]
        )
        == []
    )
    assert status_drift({"web": current}, existing, []) == []


def test_status_due_when_changed_or_the_refresh_is_due() -> None:
    status = build_status(READY, None, NOW)
    hour = timedelta(hours=1)
    assert status_due("web", status, None, NOW, hour)
    assert status_due("web", build_status(FAILED, None, NOW), status, NOW, hour)
    assert not status_due("web", status, status, NOW, hour)
    spread = reconcile._spread("web")
    stored = {**status, "lastReconciledTime": "2026-03-04T04:00:00Z"}
    assert (NOW - datetime(2026, 3, 4, 4, 0, 0, tzinfo=UTC)) < hour * spread
    assert not status_due("web", status, stored, NOW, hour)
    assert status_due("web", status, stored, NOW, timedelta(minutes=30))
    # exactly due counts as due
    exactly = NOW - hour * spread
    at = {**status, "lastReconciledTime": exactly.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    assert status_due("web", status, at, NOW, hour)


def test_status_due_reads_an_unreadable_time_as_due_and_a_naive_one_as_utc() -> None:
    status = build_status(READY, None, NOW)
    hour = timedelta(hours=1)
    for bad in ("", "yesterday", None):
        assert status_due("web", status, {**status, "lastReconciledTime": bad}, NOW, hour)
    naive = {**status, "lastReconciledTime": "2026-03-04T05:00:00"}
    assert not status_due("web", status, naive, NOW, hour)
    offset = {**status, "lastReconciledTime": "2026-03-04T07:00:00+02:00"}
    assert not status_due("web", status, offset, NOW, hour)


@pytest.mark.parametrize("name", ["web", "dns", "a", "policy-with-a-long-name", ""])
def test_the_refresh_spread_is_between_one_and_two_and_fixed_per_name(name: str) -> None:
    spread = reconcile._spread(name)
    assert 1 <= spread < 2
    assert spread == reconcile._spread(name)


def test_the_spread_is_the_crc32_per_mille() -> None:
    # zlib.crc32(b"web") == 365508689 -> 689 per mille
    assert reconcile._spread("web") == pytest.approx(1.689)
    assert reconcile._spread("") == 1.0


# --- reconcile.write ---------------------------------------------------------------------------


class RecordingWriter:
    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: list[tuple[Any, ...]] = []
        self.failing = failing

    def _maybe_fail(self, what: str) -> None:
        if what in self.failing:
            raise KubeWriteError(f"{what} refused")

    def create(self, policy: Mapping[str, Any]) -> Mapping[str, Any]:
        name = object_name(policy)
        self.calls.append(("create", name))
        self._maybe_fail(f"create {name}")
        return {"apiVersion": "v1x", "metadata": {"name": name, "uid": f"new-{name}"}}

    def delete(self, name: str, uid: str) -> None:
        self.calls.append(("delete", name, uid))
        self._maybe_fail(f"delete {name}")

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        self.calls.append(("patch", name, dict(status)))
        self._maybe_fail(f"patch {name}")

    def create_event(self, body: Mapping[str, Any]) -> None:
        self.calls.append(
            ("event", body["involvedObject"]["name"], body["reason"], body["involvedObject"]["uid"])
        )
        self._maybe_fail(f"event {body['involvedObject']['name']}")


def _write(writer: RecordingWriter, **kwargs: Any) -> list[str]:
    arguments: dict[str, Any] = {
        "policies": [],
        "existing": {},
        "changes": [],
        "statuses": {},
        "outcomes": [],
        "applied": {},
        "moment": NOW,
        "refresh": timedelta(hours=1),
    }
    arguments.update(kwargs)
    return reconcile.write(cast(RouterPolicyWriter, writer), **arguments)


def test_write_deletes_creates_patches_and_records_events_in_that_order() -> None:
    existing = {"old": router_policy("old"), "web": router_policy("web", owner_uid="u-old")}
    policies = [policy("web", "u-2")]
    changes = kube_changes(policies, existing)
    statuses = {"web": build_status(READY, None, NOW)}
    writer = RecordingWriter()
    errors = _write(
        writer,
        policies=policies,
        existing=existing,
        changes=changes,
        statuses=statuses,
        outcomes=[READY],
        applied={"web": Counter({Action.CREATE: 1})},
    )
    assert errors == []
    assert writer.calls == [
        ("delete", "web", "rp-web"),
        ("create", "web"),
        ("delete", "old", "rp-old"),
        ("patch", "web", statuses["web"]),
        # events go to the object as it is now: the new one
        ("event", "web", "RouterUpdated", "new-web"),
        ("event", "web", "Synced", "new-web"),
    ]


def test_write_skips_unchanged_statuses_and_objects_that_do_not_exist() -> None:
    status = build_status(READY, None, NOW)
    existing = {"web": router_policy("web", status=status)}
    writer = RecordingWriter()
    errors = _write(
        writer,
        existing=existing,
        statuses={"web": status, "ghost": status},
        outcomes=[READY, PolicyOutcome("ghost", Reason.SYNCED, "in sync")],
        applied={"ghost": Counter({Action.CREATE: 1})},
    )
    assert errors == []
    assert writer.calls == []


def test_write_goes_on_after_each_failure_and_returns_the_errors() -> None:
    existing = {"gone": router_policy("gone"), "web": router_policy("web")}
    writer = RecordingWriter({"delete gone", "create new", "patch web", "event web"})
    policies = [policy("web"), policy("new"), policy("other")]
    errors = _write(
        writer,
        policies=policies,
        existing=existing,
        changes=kube_changes(policies, existing),
        statuses={"web": build_status(FAILED, None, NOW), "other": build_status(READY, None, NOW)},
        outcomes=[FAILED, PolicyOutcome("other", Reason.SYNCED, "in sync")],
    )
    assert errors == [
        "create new refused",
        "delete gone refused",
        "patch web refused",
        "event web refused",
    ]
    assert [call[:2] for call in writer.calls] == [
        ("create", "new"),
        ("create", "other"),
        ("delete", "gone"),
        ("patch", "web"),
        ("patch", "other"),
        ("event", "web"),
        ("event", "other"),
    ]


def test_a_deleted_routerpolicy_gets_no_status_and_no_event() -> None:
    existing = {"web": router_policy("web")}
    writer = RecordingWriter()
    _write(
        writer,
        existing=existing,
        changes=[KubeChange(Action.DELETE, "web")],
        statuses={"web": build_status(READY, None, NOW)},
        outcomes=[READY],
    )
    assert writer.calls == [("delete", "web", "rp-web")]
    writer = RecordingWriter()
    _write(writer, existing={"web": {"metadata": None}}, changes=[KubeChange(Action.DELETE, "web")])
    assert writer.calls == [("delete", "web", "")]


def test_a_failed_policy_keeps_the_gateway_service_its_router_objects_point_at() -> None:
    previous = {"gatewayService": "apps/old", "gatewayIP": "10.0.0.4"}
    assert build_status(FAILED, previous, NOW)["gatewayService"] == "apps/old"
    assert build_status(FAILED, previous, NOW)["gatewayIP"] is None
    synced = PolicyOutcome("web", Reason.SYNCED, "in sync", 4, "10.0.0.5", None)
    assert build_status(synced, previous, NOW)["gatewayService"] is None
    assert build_status(READY, previous, NOW)["gatewayService"] == "default/web"


def test_write_records_each_events_type() -> None:
    existing = {"web": router_policy("web", status=ready_status())}
    types: list[str] = []
    writer = RecordingWriter()
    writer.create_event = lambda body: types.append(body["type"])  # type: ignore[method-assign]
    _write(
        writer, existing=existing, outcomes=[FAILED], applied={"web": Counter({Action.UPDATE: 1})}
    )
    assert types == ["Normal", "Warning"]
