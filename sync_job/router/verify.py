"""After a run wrote, trust the router, not the plan: what the router did not keep.

The tables written are read again and planned once more; whatever is still planned for an
object this run wrote is something the router did not keep as sent. Each becomes a message
naming the object, the field, what was sent and what the router holds. Nothing is sent again
within the run (the next run tries once more, and says the same if the router still refuses),
with one exception: an accept rule this run created or moved that is not directly above the
marker is deleted, since anywhere else it may open more than the user's drop rules allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sync_job.model import Action
from sync_job.router.apply import ApplyResult
from sync_job.router.plan import Change, Plan


@dataclass(frozen=True, slots=True, kw_only=True)
class NotKept:
    """One object the router did not keep as this run wrote it."""

    policy: str
    message: str


def _value(value: str) -> str:
    return value if value else "(unset)"


def describe(change: Change) -> str:
    """What the router holds instead of what was sent, for one change planned again."""
    where = f"{change.table.label} {change.key}"
    if change.action is Action.UPDATE:
        kept = ", ".join(
            f"router kept {name}={_value(change.before.get(name, ''))} after setting "
            f"{name}={_value(value)}"
            for name, value in sorted(change.after.items())
        )
        return f"{where}: {kept}"
    if change.action is Action.CREATE:
        return f"{where}: the router did not keep the object created"
    if change.action is Action.DELETE:
        return f"{where}: still on the router after it was deleted"
    return f"{where}: not directly above the marker after it was placed there"


class _Written:
    """What this run wrote, by row: rows it deleted, rows it created, updated or moved, and
    the identities it created."""

    def __init__(self, applied: ApplyResult) -> None:
        self.created = set(applied.created)
        self.deleted = {(c.table, c.id) for c in applied.done if c.action is Action.DELETE}
        self.touched = {(c.table, c.id) for c in applied.done if c.action is not Action.DELETE}
        self.touched |= {(table, row_id) for (table, _), row_id in applied.created.items()}

    def about(self, change: Change) -> bool:
        """Whether a change planned again is about what this run wrote: an object it created
        that is missing, a row it deleted that is still there, a row it created, updated or
        moved that differs. A duplicate another writer added meanwhile is not this run's."""
        if change.action is Action.CREATE:
            return (change.table, change.key) in self.created
        if change.action is Action.DELETE:
            return (change.table, change.id) in self.deleted
        return (change.table, change.id) in self.touched


def not_kept(after: Plan, applied: ApplyResult) -> list[NotKept]:
    """The objects this run wrote that the router did not keep, as planning again shows."""
    written = _Written(applied)
    return [
        NotKept(policy=change.policy, message=describe(change))
        for change in after.changes
        if written.about(change)
    ]


def misplaced_rules(after: Plan, applied: ApplyResult) -> Sequence[Change]:
    """Deletes of the accept rules this run created or moved that ended up out of place."""
    written = _Written(applied)
    return [
        Change(
            action=Action.DELETE,
            table=change.table,
            key=change.key,
            policy=change.policy,
            reason="not directly above the marker after it was placed",
            id=change.id,
        )
        for change in after.changes
        if change.action is Action.MOVE and written.about(change)
    ]
