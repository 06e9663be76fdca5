"""Executes a Plan against the router, change by change, in the plan's order.

A failed write fails its policy: the policy's remaining changes are skipped, so a policy is
never left half-way in a way the plan did not foresee, and the other policies go on. An
authentication or TLS failure, or the client's deadline passing, stops everything (no later
request could succeed). A filter rule whose planned successor was not created (its policy
failed) is placed before that successor's own successor instead, so the block stays ordered and
one policy's failure does not fail its neighbours.

Deadline: a run cut by the deadline leaves every policy either complete or untouched, except at
most the one in progress. The plan's order (`sync_job.router.order`) has each policy's writes
together, after every removal; given the client's `time_left`, the applier measures the time per
change so far in this run and, before starting a policy's group of changes, stops cleanly when the
time left (minus `reserve`, kept for reading back what was written) cannot finish it. The policies
not started are `not_reached`: the next run continues with them. A group with nothing written
before it in the run always starts (nothing is measured yet), so a policy larger than one run still
progresses. Should the client's deadline pass all the same (a write suddenly slower), the policy in
progress fails, and the policies not started are `not_reached`.

A plan of more than `PROGRESS_OVER` changes logs each one at debug level and, at info, its
progress every `PROGRESS_EVERY` seconds or tenth of the plan (`applied 1,200 of 4,500`).

Writes are never blindly retried. After an ambiguous failure (the connection dropped or timed
out after sending, a 5xx, RouterOS's `Session closed`) the applier re-reads what the write was
about and only then decides: a create that did take effect is adopted instead of being sent
again, so no duplicate is ever made; a delete whose object is gone is done; an update whose
fields already hold is done; a move is repeated only once its rule is known to exist (a move is
idempotent).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sync_job.errors import RouterAuthError, RouterError
from sync_job.model import Action
from sync_job.router.client import RouterDeadline, RouterWriter, is_router_id
from sync_job.router.ownership import normalise_address
from sync_job.router.plan import Change, Plan
from sync_job.router.planner import normalise
from sync_job.router.tables import Table

log = logging.getLogger(__name__)

NOT_REACHED = "not reached before the deadline, the next run continues"
PROGRESS_OVER = 50  # more changes than a screenful: progress lines instead of one per change
PROGRESS_EVERY = 10.0  # seconds


@dataclass(slots=True)
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    failed_policies: dict[str, str] = field(default_factory=dict)
    # an authentication failure or the deadline stopped the run: nothing more may be sent
    stopped: bool = False
    # the `.id` of every row this run created, by (table, identity)
    created: dict[tuple[Table, str], str] = field(default_factory=dict)
    # policies none of whose (remaining) changes were started before the deadline: why
    not_reached: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def done_by_policy(self) -> dict[str, Counter[Action]]:
        """How many changes of each action were made for each policy."""
        counts: dict[str, Counter[Action]] = {}
        for change in self.done:
            counts.setdefault(change.policy, Counter())[change.action] += 1
        return counts


def _identity_match(change: Change) -> dict[str, str]:
    if change.table.is_address_list:
        return {"list": change.after["list"], "address": change.after["address"]}
    return {"comment": change.after["comment"]}


def _adoptable(change: Change, row: dict[str, str]) -> bool:
    """A row found after an ambiguous create is this create's only when it has the planned
    identity (the server-side filter is not trusted alone), a valid `.id`, and is not dynamic."""
    wanted = _identity_match(change)
    same = all(
        normalise_address(row.get(k, "")) == normalise_address(v)
        if k == "address"
        else row.get(k) == v
        for k, v in wanted.items()
    )
    return same and row.get("dynamic") != "true" and is_router_id(row.get(".id"))


def _create(change: Change, writer: RouterWriter, place_before: str | None) -> dict[str, str]:
    try:
        return writer.create(change.table, change.after, place_before=place_before)
    except RouterError as error:
        duplicate = error.status == 400 and "already have such entry" in error.detail
        if not (error.ambiguous or duplicate):
            raise
        found = [row for row in writer.find(change.table, _identity_match(change))
                 if _adoptable(change, row)]  # fmt: skip
        if found:
            log.warning(
                "%s: the create took effect (or another run made it); adopting %s",
                change.key,
                found[0][".id"],
            )
            return found[0]
        if duplicate:
            raise
        log.warning("%s: the create did not take effect; sending it once more", change.key)
        return writer.create(change.table, change.after, place_before=place_before)


def _delete(change: Change, writer: RouterWriter) -> None:
    try:
        writer.delete(change.table, str(change.id))
    except RouterError as error:
        if error.status == 404:
            return  # already gone: what the plan wanted
        if not error.ambiguous:
            raise
        if writer.get(change.table, str(change.id)) is not None:  # it did not take effect
            writer.delete(change.table, str(change.id))


def _update(change: Change, writer: RouterWriter) -> None:
    def write() -> None:
        writer.update(change.table, str(change.id), change.after)

    try:
        write()
    except RouterError as error:
        if not error.ambiguous:
            raise
        row = writer.get(change.table, str(change.id))
        if row is None:
            raise
        if all(normalise(k, row.get(k, "")) == normalise(k, v) for k, v in change.after.items()):
            log.warning("%s: the update took effect; not sending it again", change.key)
            return
        log.warning("%s: the update did not take effect; sending it once more", change.key)
        write()


def _move(change: Change, writer: RouterWriter, destination: str) -> None:
    def write() -> None:
        writer.move(change.table, [str(change.id)], destination)

    try:
        write()
    except RouterError as error:
        if not error.ambiguous:
            raise
        if writer.get(change.table, str(change.id)) is None:
            raise
        log.warning("%s: the move may not have taken effect; sending it once more", change.key)
        write()  # a move to the same destination leaves the same order when repeated


class PlacementError(Exception):
    """A rule's planned destination is gone: the rule is not written anywhere else."""


class _Placement:
    """Resolves a change's `destination` to an `.id`, falling back along the planned chain.

    A destination that was itself to be created or moved in this run counts only once that
    write succeeded; otherwise the rule goes before that one's own destination, and so on down
    to a rule already in place or the marker. So a failed policy never leaves another policy's
    rule wherever its own misplaced rule happens to be.
    """

    def __init__(self, plan: Plan) -> None:
        # (table, key) of the rules whose create or move succeeded in this run: a key alone is
        # not enough, as the IPv4 and IPv6 filter tables hold rules with the same comments
        self.ids: dict[tuple[Table, str], str] = {}
        self._placed = {
            (c.table, c.key): c
            for c in plan.changes
            if c.action in (Action.CREATE, Action.MOVE) and c.destination
        }

    def resolve(self, change: Change) -> str | None:
        if change.destination is None:
            return None
        key, known = change.destination, change.destination_id
        seen: set[str] = set()
        while (change.table, key) not in self.ids:
            upstream = self._placed.get((change.table, key))
            if upstream is None:  # needed no placing: already in place, or the marker
                if known is None:
                    raise PlacementError(f"cannot place {change.key}: {key} does not exist")
                break
            if key in seen or upstream.destination is None:
                raise PlacementError(
                    f"cannot place {change.key}: {change.destination} was not placed"
                )
            seen.add(key)
            key, known = upstream.destination, upstream.destination_id
        if key != change.destination:
            log.warning(
                "%s: %s was not placed; placing it before %s instead",
                change.key,
                change.destination,
                key,
            )
        return self.ids.get((change.table, key)) or known


def _execute(change: Change, writer: RouterWriter, placement: _Placement) -> None:
    destination = placement.resolve(change)
    if change.action is Action.CREATE:
        placement.ids[(change.table, change.key)] = _create(change, writer, destination)[".id"]
    elif change.action is Action.UPDATE:
        _update(change, writer)
    elif change.action is Action.MOVE:
        _move(change, writer, str(destination))
        placement.ids[(change.table, change.key)] = str(change.id)
    else:
        _delete(change, writer)


class _Progress:
    """`applied N of M` at info level, every PROGRESS_EVERY seconds or tenth of a large plan."""

    def __init__(self, total: int, now: Callable[[], float] | None) -> None:
        self.total, self.now = total, now
        self.large = total > PROGRESS_OVER
        self.count = 0
        self.tenth = 0
        self.last = now() if now else 0.0

    def step(self, change: Change) -> None:
        self.count += 1
        level = logging.DEBUG if self.large else logging.INFO
        log.log(level, "%s %s %s", change.action.value, change.table.label, change.key)
        if not self.large:
            return
        tenth = self.count * 10 // self.total
        moment = self.now() if self.now else 0.0
        if tenth > self.tenth or (self.now and moment - self.last >= PROGRESS_EVERY):
            self.tenth, self.last = tenth, moment
            log.info("applied %s of %s", f"{self.count:,}", f"{self.total:,}")


class _Budget:
    """Whether a policy's group of changes can still finish: the time per change measured so
    far in this run times the group's size, against the time left minus `reserve`."""

    def __init__(self, time_left: Callable[[], float] | None, reserve: float) -> None:
        self.time_left, self.reserve = time_left, reserve
        self.start = time_left() if time_left else 0.0
        self.changes = 0

    def allows(self, size: int) -> bool:
        if self.time_left is None or not self.changes:
            return True  # nothing measured (or nothing done yet): go
        left = self.time_left()
        per_change = max(0.0, self.start - left) / self.changes
        return size * per_change <= left - self.reserve


def _groups(changes: list[Change]) -> list[int]:
    """For each change, the size of the policy group it starts (0 when it starts none): the
    removals come first and are never held back (a removal only closes); after them, each run
    of one policy's changes is a group."""
    starts = [0] * len(changes)
    index = next((i for i, c in enumerate(changes) if c.action is not Action.DELETE), len(changes))
    while index < len(changes):
        end = index
        while end < len(changes) and changes[end].policy == changes[index].policy:
            end += 1
        starts[index] = end - index
        index = end
    return starts


def apply(
    plan: Plan,
    writer: RouterWriter,
    *,
    time_left: Callable[[], float] | None = None,
    reserve: float = 0.0,
) -> ApplyResult:
    """Execute `plan`; with `time_left` (the client's), stop before a policy that cannot finish
    in the time left minus `reserve` (see the module docstring)."""
    result = ApplyResult()
    placement = _Placement(plan)
    pending = list(plan.changes)
    group_starts = _groups(pending)
    budget = _Budget(time_left, reserve)
    progress = _Progress(len(pending), time_left and (lambda: -time_left()))
    touched: set[str] = set()  # policies with a change started in this run
    while pending:
        size = group_starts[len(plan.changes) - len(pending)]
        if size and not budget.allows(size):
            log.warning(
                "stopping before %s: %d changes cannot finish before the deadline; "
                "%d changes are left for the next run",
                pending[0].policy, size, len(pending),
            )  # fmt: skip
            for change in pending:
                result.not_reached.setdefault(change.policy, NOT_REACHED)
            result.skipped.extend(pending)
            break
        change = pending.pop(0)
        if change.policy in result.failed_policies:
            result.skipped.append(change)
            continue
        touched.add(change.policy)
        try:
            _execute(change, writer, placement)
        except (RouterAuthError, RouterDeadline) as error:
            log.error("stopping: %s", error)
            result.failed.append((change, str(error)))
            for blocked in (change, *pending):
                if isinstance(error, RouterDeadline) and blocked.policy not in touched:
                    result.not_reached.setdefault(blocked.policy, NOT_REACHED)
                else:
                    result.failed_policies.setdefault(blocked.policy, str(error))
            result.skipped.extend(pending)
            result.stopped = True
            break
        except (RouterError, PlacementError) as error:
            log.error(
                "%s %s %s failed: %s", change.action.value, change.table.label, change.key, error
            )
            result.failed.append((change, str(error)))
            result.failed_policies.setdefault(change.policy, str(error))
            continue
        finally:
            budget.changes += 1
        progress.step(change)
        if change.action is Action.CREATE:
            result.created[(change.table, change.key)] = placement.ids[(change.table, change.key)]
        result.done.append(change)
    if progress.large:
        log.info("applied %s of %s", f"{len(result.done):,}", f"{progress.total:,}")
    return result
