"""Executes a Plan against the router, change by change, in the plan's order.

A failed write fails its policy: the policy's remaining changes are skipped, so a policy is
never left half-way in a way the plan did not foresee, and the other policies go on. An
authentication or TLS failure stops everything (no later request could succeed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sync_job.errors import RouterAuthError, RouterError
from sync_job.plan import Action, Change, Plan
from sync_job.routeros import RouterWriter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    failed_policies: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def _execute(change: Change, writer: RouterWriter, ids: dict[str, str]) -> None:
    destination = None
    if change.destination is not None:
        destination = change.destination_id or ids.get(change.destination)
        if destination is None:
            raise RouterError(
                "PLAN", change.table.value, None, f"{change.destination} was not created"
            )
    if change.action is Action.CREATE:
        created = writer.create(change.table, change.after, place_before=destination)
        ids[change.key] = created[".id"]
    elif change.action is Action.UPDATE:
        writer.update(change.table, str(change.id), change.after)
    elif change.action is Action.MOVE:
        writer.move(change.table, [str(change.id)], str(destination))
    else:
        writer.delete(change.table, str(change.id))


def apply(plan: Plan, writer: RouterWriter) -> ApplyResult:
    result = ApplyResult()
    ids: dict[str, str] = {}
    pending = list(plan.changes)
    while pending:
        change = pending.pop(0)
        if change.policy in result.failed_policies:
            result.skipped.append(change)
            continue
        try:
            _execute(change, writer, ids)
        except RouterAuthError as error:
            log.error("stopping: %s", error)
            result.failed.append((change, str(error)))
            for blocked in (change, *pending):
                result.failed_policies.setdefault(blocked.policy, str(error))
            result.skipped.extend(pending)
            break
        except RouterError as error:
            log.error(
                "%s %s %s failed: %s", change.action.value, change.table.label, change.key, error
            )
            result.failed.append((change, str(error)))
            result.failed_policies.setdefault(change.policy, str(error))
            continue
        log.info("%s %s %s", change.action.value, change.table.label, change.key)
        result.done.append(change)
    return result
