"""The execution order of a plan: closing before opening, then whole policies. Pure; no I/O.

The planner decides *what* changes (and, for filter rules, before which rule each is placed);
this module decides only *when* each change is sent:

1. Every removal, rules before address-list entries. A removal can only close access, so a
   revoked policy never waits behind another policy's creates. Rules go first so that a list no
   policy wants any more is emptied only once no owned rule points at it (its rules are deleted
   before its entries); a list that stays wanted only loses the sources its policy dropped, which
   closes exactly what the policy no longer allows.
2. Then the creates, updates and moves, one policy after another, each policy's changes
   together: its address-list entries first (a rule never opens before its list is filled), then
   its rules. Where the placements below leave a choice, the policy with the fewest changes goes
   first, so a run cut short completes as many policies as it can and a policy an earlier run
   left half-way (few changes left) is finished before another is started.

Filter creates and moves carry a `destination` that may be a rule created or moved earlier in
the same plan (`planner._place_filter_rules` places the block last to first). Policies are
ordered so that, in every rule table, the placements keep exactly the planner's relative order:
each destination is written before the rule placed before it, so the final block above the
marker is the planner's, with no extra move. Should a table's placements ever interleave two
policies (the planner never does: a policy's rules are contiguous in identity order), the
non-removals keep the planner's order, which is safe, only not grouped.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence

from sync_job.model import Action
from sync_job.router.plan import Change
from sync_job.router.tables import Table


def is_entry_table(table: Table) -> bool:
    """Address-list tables (of any family) hold entries; every other table holds rules."""
    return table.is_address_list


def _is_placement(change: Change) -> bool:
    return change.action in (Action.CREATE, Action.MOVE) and change.destination is not None


def _policy_order(changes: Sequence[Change]) -> list[str] | None:
    """Every policy of `changes`, in an order that keeps each table's placements in sequence
    (None when no such order exists); otherwise the policy with the fewest changes first (one a
    run cut short left half-way finishes first), then in order of first appearance."""
    first: dict[str, tuple[int, int]] = {}
    size = Counter(change.policy for change in changes)
    for index, change in enumerate(changes):
        first.setdefault(change.policy, (size[change.policy], index))
    after: dict[str, set[str]] = {policy: set() for policy in first}
    waiting: dict[str, int] = dict.fromkeys(first, 0)
    runs: dict[Table, list[str]] = {}
    for change in changes:
        if not _is_placement(change):
            continue
        run = runs.setdefault(change.table, [])
        if run and run[-1] == change.policy:
            continue
        if change.policy in run:
            return None  # this table's placements interleave two policies
        if run and change.policy not in after[run[-1]]:
            after[run[-1]].add(change.policy)
            waiting[change.policy] += 1
        run.append(change.policy)
    ready = [(rank, policy) for policy, rank in first.items() if not waiting[policy]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, policy = heapq.heappop(ready)
        order.append(policy)
        for successor in after[policy]:
            waiting[successor] -= 1
            if not waiting[successor]:
                heapq.heappush(ready, (first[successor], successor))
    return order if len(order) == len(first) else None


def order_changes(changes: Sequence[Change]) -> tuple[Change, ...]:
    """`changes` (the planner's order) in execution order: removals (rules, then entries), then
    each policy's entries and rules together, policy after policy (see the module docstring)."""
    removals = [c for c in changes if c.action is Action.DELETE]
    removals.sort(key=lambda change: is_entry_table(change.table))  # stable: rules first
    rest = [c for c in changes if c.action is not Action.DELETE]
    policies = _policy_order(rest)
    if policies is None:
        return (*removals, *rest)
    groups: dict[str, list[Change]] = {policy: [] for policy in policies}
    for change in rest:
        groups[change.policy].append(change)
    ordered = list(removals)
    for policy in policies:
        group = groups[policy]
        ordered += [c for c in group if is_entry_table(c.table)]
        ordered += [c for c in group if not is_entry_table(c.table)]
    return tuple(ordered)
