"""One stateless pass, `run_once`: read -> evaluate -> plan -> apply -> status.

Reads come first and a failed read raises before anything is written. Each stage lives in its
own package (`source`, `router`, `status`); this module only sequences them and is the one
place, with `sync_job.job`, that crosses from one stage to another.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sync_job.errors import RouterError
from sync_job.model import Action, Family, PolicyOutcome, PolicyTarget, Reason
from sync_job.report import RunReport
from sync_job.router import verify
from sync_job.router.apply import apply
from sync_job.router.client import RouterReader, RouterWriter
from sync_job.router.desired import desired_objects
from sync_job.router.guard import guard
from sync_job.router.ownership import Ownership
from sync_job.router.plan import Plan
from sync_job.router.planner import MarkerError, Tables, marker_problems, plan_router
from sync_job.router.system import check_supported
from sync_job.router.tables import tables_of
from sync_job.source import limits
from sync_job.source.cilium import DEFAULT_RESERVED, DEFAULT_RESERVED6, Network
from sync_job.source.evaluate import evaluate, released_addresses
from sync_job.source.limits import Limits
from sync_job.source.snapshot import ClusterSnapshot
from sync_job.status import reconcile
from sync_job.status.writes import RouterPolicyWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncSettings:
    ownership: Ownership = field(default_factory=Ownership)
    reserved: tuple[Network, ...] = DEFAULT_RESERVED + DEFAULT_RESERVED6
    # --ip-families: the families synced, each with its own router menus and marker.
    ip_families: frozenset[Family] = frozenset({Family.IPV4})
    cluster_name: str = "default"
    # --wan-interface-list: owned rules match only traffic that arrives on this interface list.
    wan_interface_list: str | None = None
    # --gateway-cidr: a gateway address outside these ranges is refused (empty: any routable).
    gateway_ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # --allow-source-ranges: a source may be an IPv4 prefix, not only a /32.
    allow_source_ranges: bool = False
    # --max-sources-per-policy, --max-ports-per-policy, --max-router-objects
    limits: Limits = field(default_factory=Limits)
    # An unchanged status is rewritten (for lastReconciledTime) only once it is this old, so a
    # no-op run costs no API write per policy.
    status_refresh: timedelta = timedelta(hours=1)
    # --allow-mass-removal: let this run remove most policies at once (sync_job.router.guard).
    allow_mass_removal: bool = False


def run_once(
    *,
    read_cluster: Callable[[], ClusterSnapshot],
    router: RouterReader,
    kube: RouterPolicyWriter | None,
    settings: SyncSettings,
    check: bool,
    now: Callable[[], datetime],
) -> RunReport:
    """One full pass. With `check`, nothing is written anywhere and `router` may be read-only."""
    snapshot = read_cluster()
    router.keep_owned(settings.ownership)  # foreign rows are never held (client.py)
    reading = router.time_left()
    tables = router.read_tables(tables_of(settings.ip_families))
    read_time = reading - router.time_left()  # kept back for the read-back after writing
    outcomes, targets = _evaluate(snapshot, settings)
    existing = snapshot.router_policies
    report = RunReport(outcomes, Plan(), reconcile.kube_changes(snapshot.policies, existing))
    report.plan, report.outcomes, report.marker_error, report.families_planned = _plan(
        snapshot, tables, outcomes, targets, settings
    )
    report.families_blocked = tuple(sorted(settings.ip_families - report.families_planned))
    report.warnings = settings.ownership.marker_warnings(tables)
    _hold_back_mass_removal(report, tables, settings)
    if not check and report.plan:
        ready = {outcome.name for outcome in report.outcomes if outcome.ready}
        synced = [target for target in targets if target.name in ready]
        _apply_and_read_back(report, router, tables, synced, settings, read_time)
    moment = now()
    report.statuses = reconcile.build_statuses(
        report.outcomes, existing, report.kube_changes, moment
    )
    if existing is not None and check:
        report.kube_changes += reconcile.status_drift(
            report.statuses, existing, report.kube_changes
        )
    elif existing is not None and kube is not None:
        report.kube_errors += reconcile.write(
            kube,
            policies=snapshot.policies,
            existing=existing,
            changes=report.kube_changes,
            statuses=report.statuses,
            outcomes=report.outcomes,
            applied=report.applied.done_by_policy() if report.applied else {},
            moment=moment,
            refresh=settings.status_refresh,
        )
    return report


def _evaluate(
    snapshot: ClusterSnapshot, settings: SyncSettings
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """Every annotated policy validated and discovered, then refused where its router objects
    could not be owned or it is over a cap (`sync_job.source.limits`)."""
    outcomes, targets = evaluate(
        snapshot,
        reserved=settings.reserved,
        cluster_name=settings.cluster_name,
        gateway_ranges=settings.gateway_ranges,
        allow_source_ranges=settings.allow_source_ranges,
        families=settings.ip_families,
    )
    outcomes, targets = _ownable(outcomes, targets, settings.ownership)
    own, wan = settings.ownership, settings.wan_interface_list
    chains = dict.fromkeys(settings.ip_families, "")
    return limits.cap(
        outcomes, targets, settings.limits, lambda t: len(desired_objects([t], own, chains, wan))
    )


def _apply_and_read_back(
    report: RunReport,
    router: RouterReader,
    tables: Tables,
    targets: list[PolicyTarget],
    settings: SyncSettings,
    reserve: float = 0.0,
) -> None:
    """Apply the plan, then read the written tables back and plan again: what is still planned
    for an object this run wrote, the router did not keep. No write is sent twice, except that
    an accept rule left out of place is deleted (`sync_job.router.verify`)."""
    if not isinstance(router, RouterWriter):
        raise TypeError("applying a plan needs a RouterWriter")
    report.router_system = router.system_resource()
    check_supported(report.router_system)  # before any write
    frozen = {outcome.name for outcome in report.outcomes if not outcome.ready}
    report.applied = applied = apply(
        report.plan, router, time_left=router.time_left, reserve=reserve
    )
    failed, later = applied.failed_policies, applied.not_reached
    report.outcomes = [o.blocked(later[o.name]) if o.name in later else
                       o.write_failed(failed.get(o.name)) for o in report.outcomes]  # fmt: skip
    written = {c.table for c in applied.done} | {c.table for c, _ in applied.failed}
    if not written or applied.stopped:  # after a 401 or the deadline, no request is sent
        return
    try:
        after_tables = {table: router.rows(table) if table in written else rows
                        for table, rows in tables.items()}  # fmt: skip
    except RouterError as error:  # what was written stays written: the run fails, saying so
        report.not_kept.append(f"the router could not be read back after writing: {error}")
        return
    try:
        after = plan_router(
            targets, after_tables, settings.ownership, frozen,
            wan_interface_list=settings.wan_interface_list, families=report.families_planned,
        )  # fmt: skip
    except MarkerError as error:
        after = Plan()
        report.not_kept.append(f"the marker is no longer readable after writing: {error}")
    misplaced = verify.misplaced_rules(after, applied)
    if misplaced:
        fixed = apply(Plan(tuple(misplaced)), router)
        applied.done.extend(fixed.done)
        applied.failed.extend(fixed.failed)
    lost = verify.not_kept(after, applied)
    report.not_kept += [item.message for item in lost]
    by_policy: dict[str, list[str]] = {}
    for item in lost:
        by_policy.setdefault(item.policy, []).append(item.message)
    report.outcomes = [o.not_kept(by_policy.get(o.name, ())) for o in report.outcomes]


def _hold_back_mass_removal(report: RunReport, tables: Tables, settings: SyncSettings) -> None:
    """Apply the mass-removal guard to the plan; the RouterPolicy objects of the policies held
    back are kept too, so nothing of them is deleted (README: The mass-removal guard)."""
    guarded = guard(report.plan, tables, settings.ownership, {o.name for o in report.outcomes})
    if not guarded.held_back:
        return
    names = ", ".join(held.policy for held in guarded.held_back)
    if settings.allow_mass_removal:
        log.warning(
            "removing %d of the %d policies that own router objects (%s): allowed by "
            "--allow-mass-removal", guarded.removed, guarded.owners, names,
        )  # fmt: skip
        return
    held = {held.policy for held in guarded.held_back}
    report.plan, report.held_back, report.owning_policies = (
        guarded.plan, list(guarded.held_back), guarded.owners,
    )  # fmt: skip
    report.kube_changes = [
        c for c in report.kube_changes if not (c.action is Action.DELETE and c.name in held)
    ]


def _ownable(
    outcomes: list[PolicyOutcome], targets: list[PolicyTarget], ownership: Ownership
) -> tuple[list[PolicyOutcome], list[PolicyTarget]]:
    """A policy whose router objects would read back as foreign (a name starting with the
    marker's) is refused, or every run would create its objects again."""
    refused = {t.name for t in targets if not ownership.can_own(t.name)}
    message = (
        "CiliumClusterwideNetworkPolicy {}: metadata.name may not start with "
        f"{ownership.marker_comment.rsplit('::', 1)[1]!r}: its router objects would look like "
        "the marker rule"
    )
    return [
        replace(o, reason=Reason.VALIDATION_FAILED, message=message.format(o.name),
                gateway_ip=None, gateway_service=None)
        if o.name in refused else o
        for o in outcomes
    ], [t for t in targets if t.name not in refused]  # fmt: skip


def _plan(
    snapshot: ClusterSnapshot,
    tables: Tables,
    outcomes: list[PolicyOutcome],
    targets: list[PolicyTarget],
    settings: SyncSettings,
) -> tuple[Plan, list[PolicyOutcome], str | None, frozenset[Family]]:
    """The router plan, the outcomes it changes, and why a family may not be written (its
    marker is missing or not unique): then the policies that need that family are SyncFailed
    and nothing of it is written, while the other family goes on."""
    problems = marker_problems(tables, settings.ownership, settings.ip_families)
    for error in problems.values():
        log.error("router: %s", error)
    families = settings.ip_families - problems.keys()
    outcomes = _blocked_by_markers(outcomes, targets, problems, families)
    released = released_addresses(snapshot, outcomes)
    frozen = {outcome.name for outcome in outcomes if not outcome.ready}
    plan = plan_router(
        [target for target in targets if target.name not in frozen],
        tables,
        settings.ownership,
        frozen,
        wan_interface_list=settings.wan_interface_list,
        released=released,
        families=families,
    )
    marker_error = "; ".join(str(problems[f]) for f in sorted(problems)) or None
    return plan, _note_released(outcomes, plan, released), marker_error, frozenset(families)


def _blocked_by_markers(
    outcomes: list[PolicyOutcome],
    targets: list[PolicyTarget],
    problems: Mapping[Family, MarkerError],
    families: frozenset[Family],
) -> list[PolicyOutcome]:
    """SyncFailed for each policy that needs a family whose marker is unusable, saying why; a
    policy that failed already (so needs no family yet) only when no family can be written."""
    if not problems:
        return outcomes
    needs = {target.name: target.families for target in targets}
    blocked = []
    for outcome in outcomes:
        wanted = needs.get(outcome.name, problems.keys() if not families else frozenset())
        why = [str(problems[family]) for family in sorted(wanted) if family in problems]
        blocked.append(outcome.blocked("; ".join(why)) if why else outcome)
    return blocked


def _note_released(
    outcomes: list[PolicyOutcome], plan: Plan, released: Mapping[str, Mapping[str, str]]
) -> list[PolicyOutcome]:
    """A failed policy whose NAT rules to a recycled address are removed says so."""
    why = {
        c.policy: c.reason for c in plan.changes if c.reason in released.get(c.policy, {}).values()
    }
    return [
        o.noted(f"its NAT rules are removed: {why[o.name]}" if o.name in why else None)
        for o in outcomes
    ]
