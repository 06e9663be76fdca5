"""Kubernetes Events on RouterPolicy objects, so `kubectl describe routerpolicy` tells the story.

One Normal `RouterUpdated` event per policy whose router objects a run changed (with counts), and
one event when the Ready condition's reason or message changes (Warning when not Ready). A
policy failing the same way run after run does not repeat its Warning every five minutes.
Events of cluster-scoped objects live in the `default` namespace, as client-go records them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sync_job.model import Action, PolicyOutcome, rfc3339

EVENT_NAMESPACE = "default"
COMPONENT = "router-policy-sync"


def _condition(status: Mapping[str, Any] | None) -> tuple[str, str]:
    for condition in (status or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("reason", "")), str(condition.get("message", ""))
    return "", ""


def _counts(counts: Counter[Action]) -> str:
    words = {
        Action.CREATE: "created",
        Action.UPDATE: "updated",
        Action.MOVE: "moved",
        Action.DELETE: "deleted",
    }
    return ", ".join(f"{words[a]} {counts[a]}" for a in Action if counts[a])


def policy_events(
    outcomes: Iterable[PolicyOutcome],
    applied: Mapping[str, Counter[Action]],
    previous: Mapping[str, Mapping[str, Any] | None],
) -> list[tuple[str, str, str, str]]:
    """(policy, type, reason, message) for every event a run should record; `applied` counts
    the router changes made per policy."""
    events = []
    for outcome in outcomes:
        if applied.get(outcome.name):
            message = f"router objects {_counts(applied[outcome.name])}"
            events.append((outcome.name, "Normal", "RouterUpdated", message))
        if _condition(previous.get(outcome.name)) != (outcome.reason.value, outcome.message):
            kind = "Normal" if outcome.ready else "Warning"
            events.append((outcome.name, kind, outcome.reason.value, outcome.message))
    return events


def event_body(
    router_policy: Mapping[str, Any], kind: str, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    meta = router_policy.get("metadata") or {}
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": EVENT_NAMESPACE},
        "involvedObject": {
            "apiVersion": router_policy.get("apiVersion"),
            "kind": "RouterPolicy",
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
    }
