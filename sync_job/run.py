"""One stateless pass: read the cluster and the router, plan, apply (unless checking), write status.

Reads come first and a failed read raises before anything is written. The pure parts (policy
evaluation, planning, status building) are called from here; this module only sequences them
and performs the writes through the clients it is given.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_job.apply import ApplyResult, apply
from sync_job.cilium import DEFAULT_RESERVED, parse_policy
from sync_job.cluster import ClusterSnapshot
from sync_job.desired import desired_objects
from sync_job.discovery import PodIndex, ServiceIndex, find_gateway
from sync_job.errors import KubeWriteError
from sync_job.events import event_body, policy_events
from sync_job.kube import KubeClient
from sync_job.model import PolicyError, PolicyTarget, Reason, Table
from sync_job.ownership import Ownership
from sync_job.plan import Action, Plan
from sync_job.planner import MarkerError, find_marker, plan
from sync_job.routeros import RouterReader, RouterWriter
from sync_job.status import PolicyOutcome, build_status, status_diff

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncSettings:
    ownership: Ownership = field(default_factory=Ownership)
    reserved: tuple[ipaddress.IPv4Network, ...] = DEFAULT_RESERVED
    cluster_name: str = "default"
    # An unchanged status is rewritten (for lastReconciledTime) only once it is this old, so a
    # no-op run costs no API write per policy.
    status_refresh: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class KubeChange:
    """A RouterPolicy object a pass creates, deletes or whose status it changes."""

    action: Action
    name: str
    detail: tuple[str, ...] = ()


@dataclass(slots=True)
class RunReport:
    outcomes: list[PolicyOutcome]
    plan: Plan
    kube_changes: list[KubeChange]
    statuses: dict[str, dict[str, Any]]
    marker_error: str | None = None
    applied: ApplyResult | None = None
    kube_errors: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.plan) or bool(self.kube_changes) or self.marker_error is not None

    @property
    def failed(self) -> bool:
        router_failed = self.applied is not None and not self.applied.ok
        unsynced = any(not outcome.ready for outcome in self.outcomes)
        # Without a marker nothing is written, even orphans a run would remove: never a success.
        no_marker = self.marker_error is not None
        return router_failed or unsynced or no_marker or bool(self.kube_errors)


def _policy_name(raw: Mapping[str, Any]) -> str:
    return str((raw.get("metadata") or {}).get("name") or "")


def _synced_message(target: PolicyTarget) -> str:
    by_protocol: dict[str, list[str]] = {}
    for port in target.gateway.ports:
        by_protocol.setdefault(port.protocol, []).append(str(port.port))
    ports = "; ".join(f"{proto} {','.join(ports)}" for proto, ports in sorted(by_protocol.items()))
    gateway = target.gateway
    return (
        f"router in sync: {len(target.sources)} source(s) -> {gateway.ip} "
        f"(Service {gateway.namespace}/{gateway.name}) on {ports}"
    )


_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def _check_name(raw_name: Any, uses: int) -> None:
    """Names become router list names and comments, so only names Kubernetes accepts pass."""
    name = str(raw_name or "")
    owner = f"CiliumClusterwideNetworkPolicy {name!r}"
    if not name:
        raise PolicyError(
            Reason.VALIDATION_FAILED, "CiliumClusterwideNetworkPolicy: metadata.name is missing"
        )
    if not isinstance(raw_name, str):
        raise PolicyError(Reason.VALIDATION_FAILED, f"{owner}: metadata.name is not a string")
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise PolicyError(
            Reason.VALIDATION_FAILED,
            f"{owner}: metadata.name is not a DNS-1123 subdomain (lower-case letters, digits, "
            "'-' and '.', at most 253 characters)",
        )
    if uses > 1:
        raise PolicyError(
            Reason.VALIDATION_FAILED, f"{owner}: metadata.name is used by {uses} policies"
        )


def evaluate(
    snapshot: ClusterSnapshot, settings: SyncSettings
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """Validate and discover every annotated policy; one policy's failure never stops another."""
    pods = PodIndex(snapshot.pods, snapshot.namespace_labels, settings.cluster_name)
    services = ServiceIndex(snapshot.services)
    outcomes: list[PolicyOutcome] = []
    targets: list[PolicyTarget] = []
    names = Counter(_policy_name(raw) for raw in snapshot.policies)
    for raw in sorted(snapshot.policies, key=_policy_name):
        meta = raw.get("metadata") or {}
        name = _policy_name(raw)
        generation = meta.get("generation")
        generation = generation if isinstance(generation, int) else 0
        try:
            _check_name(meta.get("name"), names[name])
            spec = parse_policy(raw, settings.reserved)
            gateway = find_gateway(spec, pods, services)
        except PolicyError as error:
            log.warning("policy %s: %s: %s", name, error.reason.value, error.message)
            outcomes.append(PolicyOutcome(name, error.reason, error.message, generation))
            continue
        target = PolicyTarget(name, spec.sources, gateway)
        targets.append(target)
        outcomes.append(
            PolicyOutcome(name, Reason.SYNCED, _synced_message(target), generation, gateway.ip)
        )
    return outcomes, targets


def _marker_failure(outcome: PolicyOutcome, marker_error: str) -> PolicyOutcome:
    message = marker_error
    if not outcome.ready:
        message += f" (besides: {outcome.reason.value}: {outcome.message})"
    return replace(outcome, reason=Reason.SYNC_FAILED, message=message)


def _kube_changes(snapshot: ClusterSnapshot) -> list[KubeChange]:
    if snapshot.router_policies is None:
        return []
    existing = snapshot.router_policies
    wanted = {_policy_name(policy): policy for policy in snapshot.policies}
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


def _with_apply_failures(
    outcomes: Sequence[PolicyOutcome], result: ApplyResult
) -> list[PolicyOutcome]:
    updated = []
    for outcome in outcomes:
        failure = result.failed_policies.get(outcome.name)
        if failure is not None and outcome.ready:
            outcome = replace(
                outcome, reason=Reason.SYNC_FAILED, message=f"router write failed: {failure}"
            )
        updated.append(outcome)
    return updated


def _status_due(
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


def _write_kube(
    kube: KubeClient,
    snapshot: ClusterSnapshot,
    report: RunReport,
    moment: datetime,
    refresh: timedelta,
) -> None:
    policies = {_policy_name(policy): policy for policy in snapshot.policies}
    existing = dict(snapshot.router_policies or {})
    for change in report.kube_changes:
        try:
            if change.action is Action.DELETE:
                uid = str((existing[change.name].get("metadata") or {}).get("uid", ""))
                kube.delete_router_policy(change.name, uid)
                existing.pop(change.name, None)
            else:
                existing[change.name] = kube.create_router_policy(policies[change.name])
        except KubeWriteError as error:
            log.error("%s", error)
            report.kube_errors.append(str(error))
    for name, status in report.statuses.items():
        if name not in existing or not _status_due(
            name, status, existing[name].get("status"), moment, refresh
        ):
            continue
        try:
            kube.patch_status(name, status)
        except KubeWriteError as error:
            log.error("%s", error)
            report.kube_errors.append(str(error))
    previous = {name: _previous_status(snapshot, name) for name in report.statuses}
    applied = report.applied.done if report.applied else []
    for name, kind, reason, message in policy_events(report.outcomes, applied, previous):
        if name not in existing:
            continue
        try:
            kube.create_event(event_body(existing[name], kind, reason, message, moment))
        except KubeWriteError as error:
            log.error("%s", error)
            report.kube_errors.append(str(error))


def run_once(
    *,
    read_cluster: Callable[[], ClusterSnapshot],
    router: RouterReader,
    kube: KubeClient | None,
    settings: SyncSettings,
    check: bool,
    now: Callable[[], datetime],
) -> RunReport:
    """One full pass. With `check`, nothing is written anywhere and `router` may be read-only."""
    snapshot = read_cluster()
    tables = router.read_tables()
    outcomes, targets = evaluate(snapshot, settings)
    ownership = settings.ownership
    marker_error = None
    router_plan = Plan()
    try:
        marker = find_marker(tables.get(Table.FILTER, []), ownership)
    except MarkerError as error:
        marker_error = str(error)
        log.error("router: %s", marker_error)
        outcomes = [_marker_failure(outcome, marker_error) for outcome in outcomes]
    else:
        frozen = {outcome.name for outcome in outcomes if not outcome.ready}
        wanted = desired_objects(targets, ownership, marker.chain)
        router_plan = plan(wanted, tables, ownership, marker, frozen)
    report = RunReport(outcomes, router_plan, _kube_changes(snapshot), {}, marker_error)
    if not check and router_plan:
        if not isinstance(router, RouterWriter):
            raise TypeError("applying a plan needs a RouterWriter")
        report.applied = apply(router_plan, router)
        report.outcomes = _with_apply_failures(report.outcomes, report.applied)
    moment = now()
    _build_statuses(report, snapshot, moment)
    if check and snapshot.router_policies is not None:
        report.kube_changes.extend(_status_drift(report, snapshot))
    if not check and kube is not None and snapshot.router_policies is not None:
        _write_kube(kube, snapshot, report, moment, settings.status_refresh)
    return report


def _previous_status(snapshot: ClusterSnapshot, name: str) -> Mapping[str, Any] | None:
    current = (snapshot.router_policies or {}).get(name)
    return (current or {}).get("status")


def _build_statuses(report: RunReport, snapshot: ClusterSnapshot, moment: datetime) -> None:
    # A RouterPolicy that is deleted and created again starts afresh, without the old status.
    recreated = {change.name for change in report.kube_changes if change.action is Action.DELETE}
    report.statuses = {
        outcome.name: build_status(
            outcome,
            None if outcome.name in recreated else _previous_status(snapshot, outcome.name),
            moment,
        )
        for outcome in report.outcomes
    }


def _status_drift(report: RunReport, snapshot: ClusterSnapshot) -> list[KubeChange]:
    recreated = {change.name for change in report.kube_changes}
    drift = []
    for name, status in report.statuses.items():
        if name in recreated:
            continue
        differences = status_diff(status, _previous_status(snapshot, name))
        if differences:
            drift.append(KubeChange(Action.UPDATE, name, tuple(differences)))
    return drift
