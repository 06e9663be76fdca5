"""The RouterPolicy side of a pass: which objects to create or delete, which statuses to write.

Pure planning (`kube_changes`, `build_statuses`, `status_drift`, `status_due`) takes the raw
annotated policies and the RouterPolicy objects as read, never the cluster snapshot type, so
this stage stays apart from `sync_job.source`. `write` performs what was planned.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_job.errors import KubeWriteError
from sync_job.model import Action, PolicyOutcome
from sync_job.status.conditions import build_status, status_diff
from sync_job.status.events import event_body, policy_events
from sync_job.status.writes import RouterPolicyWriter

log = logging.getLogger(__name__)

RawObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class KubeChange:
    """A RouterPolicy object a pass creates, deletes or whose status it changes."""

    action: Action
    name: str
    detail: tuple[str, ...] = ()


def object_name(raw: RawObject) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def kube_changes(
    policies: Sequence[RawObject], existing: Mapping[str, RawObject] | None
) -> list[KubeChange]:
    """RouterPolicy creates and deletes: one object per annotated policy, owned by it."""
    if existing is None:
        return []
    wanted = {object_name(policy): policy for policy in policies}
    changes = []
    for name, policy in sorted(wanted.items()):
        uid = (policy.get("metadata") or {}).get("uid")
        current = existing.get(name)
        if current is None:
            changes.append(KubeChange(Action.CREATE, name))
            continue
        owners = (current.get("metadata") or {}).get("ownerReferences") or []
        if uid and not any(owner.get("uid") == uid for owner in owners):
            changes.append(KubeChange(Action.DELETE, name, ("owned by an older policy",)))
            changes.append(KubeChange(Action.CREATE, name))
    changes.extend(
        KubeChange(Action.DELETE, name, ("its Cilium policy is gone or no longer annotated",))
        for name in sorted(set(existing) - set(wanted))
    )
    return changes


def _previous(existing: Mapping[str, RawObject] | None, name: str) -> Mapping[str, Any] | None:
    current = (existing or {}).get(name)
    return (current or {}).get("status")


def build_statuses(
    outcomes: Sequence[PolicyOutcome],
    existing: Mapping[str, RawObject] | None,
    changes: Sequence[KubeChange],
    moment: datetime,
) -> dict[str, dict[str, Any]]:
    # A RouterPolicy that is deleted and created again starts afresh, without the old status.
    recreated = {change.name for change in changes if change.action is Action.DELETE}
    return {
        outcome.name: build_status(
            outcome,
            None if outcome.name in recreated else _previous(existing, outcome.name),
            moment,
        )
        for outcome in outcomes
    }


def status_drift(
    statuses: Mapping[str, Mapping[str, Any]],
    existing: Mapping[str, RawObject],
    changes: Sequence[KubeChange],
) -> list[KubeChange]:
    """Under --check: every status that a run would change, timestamps aside."""
    recreated = {change.name for change in changes}
    drift = []
    for name, status in statuses.items():
        if name in recreated:
            continue
        differences = status_diff(status, _previous(existing, name))
        if differences:
            drift.append(KubeChange(Action.UPDATE, name, tuple(differences)))
    return drift


def status_due(
    name: str,
    status: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    moment: datetime,
    refresh: timedelta,
) -> bool:
    """Write when anything but lastReconciledTime changed, or the stored one is old: between
    `refresh` and twice that, fixed per policy, so unchanged statuses are refreshed gradually."""
    if status_diff(status, stored):
        return True
    last = str((stored or {}).get("lastReconciledTime") or "")
    try:
        written = datetime.fromisoformat(last.replace("Z", "+00:00"))
    except ValueError:
        return True
    if written.tzinfo is None:  # a hand-written local time: read it as UTC
        written = written.replace(tzinfo=UTC)
    return moment - written >= refresh * _spread(name)


def _spread(name: str) -> float:
    """1.0 to 2.0, fixed per policy, so refreshes do not all fall due in the same run."""
    return 1 + zlib.crc32(name.encode()) % 1000 / 1000


def write(
    writer: RouterPolicyWriter,
    *,
    policies: Sequence[RawObject],
    existing: Mapping[str, RawObject],
    changes: Sequence[KubeChange],
    statuses: Mapping[str, Mapping[str, Any]],
    outcomes: Sequence[PolicyOutcome],
    applied: Mapping[str, Counter[Action]],
    moment: datetime,
    refresh: timedelta,
) -> list[str]:
    """Create and delete RouterPolicies, write due statuses, record Events; the errors met.

    `applied` counts, per policy, the router changes this run made. One failed write never
    stops the others.
    """
    errors: list[str] = []
    by_name = {object_name(policy): policy for policy in policies}
    current = dict(existing)
    previous = {name: _previous(existing, name) for name in statuses}
    for change in changes:
        try:
            if change.action is Action.DELETE:
                uid = str((current[change.name].get("metadata") or {}).get("uid", ""))
                writer.delete(change.name, uid)
                current.pop(change.name, None)
            else:
                current[change.name] = writer.create(by_name[change.name])
        except KubeWriteError as error:
            log.error("%s", error)
            errors.append(str(error))
    for name, status in statuses.items():
        if name not in current or not status_due(
            name, status, current[name].get("status"), moment, refresh
        ):
            continue
        try:
            writer.patch_status(name, status)
        except KubeWriteError as error:
            log.error("%s", error)
            errors.append(str(error))
    for name, kind, reason, message in policy_events(outcomes, applied, previous):
        if name not in current:
            continue
        try:
            writer.create_event(event_body(current[name], kind, reason, message, moment))
        except KubeWriteError as error:
            log.error("%s", error)
            errors.append(str(error))
    return errors
