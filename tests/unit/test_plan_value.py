"""The plan value: truthiness, counts and the one-line summary the text output ends with."""

from __future__ import annotations

from sync_job.model import Action
from sync_job.router.plan import Change, Plan
from sync_job.router.tables import Table


def _change(action: Action, key: str = "k") -> Change:
    return Change(action=action, table=Table.NAT, key=key, policy="p", reason="r")


def test_an_empty_plan_is_false_and_says_no_changes() -> None:
    assert not Plan()
    assert Plan().changes == ()
    assert Plan().counts() == {}
    assert Plan().summary() == "No changes."


def test_a_plan_with_a_change_is_true() -> None:
    assert Plan((_change(Action.MOVE),))


def test_counts_per_action() -> None:
    plan = Plan(
        (
            _change(Action.CREATE, "a"),
            _change(Action.CREATE, "b"),
            _change(Action.DELETE, "c"),
            _change(Action.UPDATE, "d"),
        )
    )
    assert plan.counts() == {Action.CREATE: 2, Action.DELETE: 1, Action.UPDATE: 1}


def test_summary_names_every_action_in_a_fixed_order_with_zeroes() -> None:
    plan = Plan((_change(Action.DELETE), _change(Action.CREATE), _change(Action.CREATE)))
    assert plan.summary() == "Plan: 2 to create, 0 to update, 0 to move, 1 to delete."
    every = Plan(tuple(_change(action) for action in (Action.MOVE, Action.UPDATE)))
    assert every.summary() == "Plan: 0 to create, 1 to update, 1 to move, 0 to delete."


def test_change_defaults_say_nothing_is_known_yet() -> None:
    change = _change(Action.CREATE)
    assert change.id is None
    assert change.before == {}
    assert change.after == {}
    assert change.destination is None
    assert change.destination_id is None
    # each change gets its own mappings
    assert _change(Action.CREATE).before is not change.before
