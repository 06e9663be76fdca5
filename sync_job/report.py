"""What one pass found and did: the RunReport that render, metrics and the exit code read.

This is the one door from the stages to the front end: `render` and `metrics` import the
types they need from here (and `sync_job.model`), never from `router` or `status` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sync_job.model import Action, Family, PolicyOutcome
from sync_job.router.apply import ApplyResult
from sync_job.router.guard import MIN_REMOVED, HeldBack
from sync_job.router.plan import Change, Plan
from sync_job.status.reconcile import KubeChange

__all__ = [
    "MIN_REMOVED",
    "Action",
    "ApplyResult",
    "Change",
    "HeldBack",
    "KubeChange",
    "Plan",
    "RunReport",
    "held_back_note",
]


@dataclass(slots=True)
class RunReport:
    outcomes: list[PolicyOutcome]
    plan: Plan
    kube_changes: list[KubeChange]
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    marker_error: str | None = None
    # the families whose marker is unusable, so nothing of theirs is written; the others are
    families_blocked: tuple[Family, ...] = ()
    families_planned: frozenset[Family] = frozenset({Family.IPV4})
    # usable but suspicious router set-ups (a marker outside `forward`); never a failure
    warnings: list[str] = field(default_factory=list)
    applied: ApplyResult | None = None
    kube_errors: list[str] = field(default_factory=list)
    # what the router did not keep after this run wrote it (the read-back check)
    not_kept: list[str] = field(default_factory=list)
    # the router's /system/resource (version, board-name), read on runs that write
    router_system: dict[str, str] | None = None
    # removals the mass-removal guard held back (never applied), and how many policies own
    # objects on the router, which the rule compares them with
    held_back: list[HeldBack] = field(default_factory=list)
    owning_policies: int = 0

    @property
    def drift(self) -> bool:
        return bool(self.plan) or bool(self.kube_changes) or self.marker_error is not None

    @property
    def failed(self) -> bool:
        router_failed = self.applied is not None and not self.applied.ok
        unsynced = any(not outcome.ready for outcome in self.outcomes)
        # Without a marker nothing is written, even orphans a run would remove: never a success.
        no_marker = self.marker_error is not None
        return (
            router_failed or unsynced or no_marker or bool(self.kube_errors) or bool(self.not_kept)
        )


def held_back_note(report: RunReport, *, check: bool) -> str:
    """Why the mass-removal guard held removals back, and how to let them through: one line
    that text, JSON and Markdown all print."""
    count, owning = len(report.held_back), report.owning_policies
    verb = "a run would hold back" if check else "held back"
    return (
        f"{verb} the removal of {count} of the {owning} policies that own router objects: more "
        f"than half at once (and at least {MIN_REMOVED}) looks like a bad read, not an intent; "
        "if it is intended, run once with --allow-mass-removal (or ALLOW_MASS_REMOVAL=1)"
    )
