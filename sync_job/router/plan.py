"""The plan value: what one pass will do to the router, in the order it must be done.

A plan is data. The planner builds it, the renderer prints it, the applier executes it, and
`--check` stops after printing it. Changes are listed in execution order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from sync_job.model import Action
from sync_job.router.tables import Table


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One router write.

    `after` is the body to send: every field for a create, only the differing fields for an
    update. `destination` names (by identity) the filter rule to place this one before; its
    `.id` is `destination_id` when the rule exists already, else the rule is created earlier in
    the same plan and the applier learns its id then.
    """

    action: Action
    table: Table
    key: str
    policy: str
    reason: str
    id: str | None = None
    before: Mapping[str, str] = field(default_factory=dict)
    after: Mapping[str, str] = field(default_factory=dict)
    destination: str | None = None
    destination_id: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def counts(self) -> Counter[Action]:
        return Counter(change.action for change in self.changes)

    def summary(self) -> str:
        counts = self.counts()
        if not counts:
            return "No changes."
        words = {
            Action.CREATE: "to create",
            Action.UPDATE: "to update",
            Action.MOVE: "to move",
            Action.DELETE: "to delete",
        }
        return "Plan: " + ", ".join(f"{counts[action]} {words[action]}" for action in Action) + "."
