"""The applier against an in-memory router: order, learnt ids, per-policy failure, the stop on
authentication or deadline, placement fallback, and the re-read after an ambiguous write
(sync_job/router/apply.py's docstring lists the rules pinned here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest

from sync_job.errors import RouterAuthError, RouterError
from sync_job.model import Action
from sync_job.router.apply import NOT_REACHED, ApplyResult, apply
from sync_job.router.client import RouterDeadline, RouterWriter
from sync_job.router.plan import Change, Plan
from sync_job.router.tables import Table

F, N, L = Table.FILTER, Table.NAT, Table.ADDRESS_LIST


def ambiguous() -> RouterError:
    return RouterError("PUT", "x", None, "connection dropped", ambiguous=True)


def refused(status: int = 400, detail: str = "bad") -> RouterError:
    return RouterError("PUT", "x", status, detail)


class FakeRouter:
    """Rows per table; `fail[method]` holds (error, took_effect) for the next calls."""

    def __init__(self, rows: Mapping[Table, Sequence[dict[str, str]]] | None = None) -> None:
        self.rows: dict[Table, list[dict[str, str]]] = {t: [] for t in Table}
        for table, table_rows in (rows or {}).items():
            self.rows[table] = [dict(row) for row in table_rows]
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, list[tuple[RouterError, bool]]] = {}
        self.next_id = 100

    def _failure(self, method: str) -> tuple[RouterError, bool] | None:
        queue = self.fail.get(method)
        return queue.pop(0) if queue else None

    def _index(self, table: Table, id: str) -> int:
        return next(i for i, row in enumerate(self.rows[table]) if row[".id"] == id)

    def create(
        self, table: Table, fields: Mapping[str, str], place_before: str | None = None
    ) -> dict[str, str]:
        self.calls.append(("create", table, dict(fields), place_before))
        failure = self._failure("create")
        if failure and not failure[1]:
            raise failure[0]
        row = {".id": f"*{self.next_id}", **fields}
        self.next_id += 1
        if place_before is None:
            self.rows[table].append(row)
        else:
            self.rows[table].insert(self._index(table, place_before), row)
        if failure:
            raise failure[0]
        return dict(row)

    def update(self, table: Table, id: str, fields: Mapping[str, str]) -> None:
        self.calls.append(("update", table, id, dict(fields)))
        failure = self._failure("update")
        if failure and not failure[1]:
            raise failure[0]
        self.rows[table][self._index(table, id)].update(fields)
        if failure:
            raise failure[0]

    def delete(self, table: Table, id: str) -> None:
        self.calls.append(("delete", table, id))
        failure = self._failure("delete")
        if failure and not failure[1]:
            raise failure[0]
        del self.rows[table][self._index(table, id)]
        if failure:
            raise failure[0]

    def move(self, table: Table, ids: Sequence[str], destination: str) -> None:
        self.calls.append(("move", table, list(ids), destination))
        failure = self._failure("move")
        if failure and not failure[1]:
            raise failure[0]
        row = self.rows[table].pop(self._index(table, ids[0]))
        self.rows[table].insert(self._index(table, destination), row)
        if failure:
            raise failure[0]

    def find(self, table: Table, match: Mapping[str, str]) -> list[dict[str, str]]:
        self.calls.append(("find", table, dict(match)))
        return [
            dict(row) for row in self.rows[table] if all(row.get(k) == v for k, v in match.items())
        ]

    def get(self, table: Table, id: str) -> dict[str, str] | None:
        self.calls.append(("get", table, id))
        return next((dict(row) for row in self.rows[table] if row[".id"] == id), None)

    def writes(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] not in ("find", "get")]


def run(plan: Sequence[Change], router: FakeRouter) -> ApplyResult:
    return apply(Plan(tuple(plan)), cast(RouterWriter, router))


MARKER = {".id": "*M", "comment": "router-policy-sync::marker"}


def rule(key: str, policy: str = "web", **kwargs: Any) -> Change:
    fields = {"chain": "forward", "comment": key}
    return Change(
        action=kwargs.pop("action", Action.CREATE),
        table=F,
        key=key,
        policy=policy,
        reason="missing",
        after=kwargs.pop("after", fields),
        **kwargs,
    )


def entry(address: str, policy: str = "web", **kwargs: Any) -> Change:
    return Change(
        action=kwargs.pop("action", Action.CREATE),
        table=L,
        key=f"router-policy-sync::{policy} {address}",
        policy=policy,
        reason="missing",
        after=kwargs.pop("after", {"list": f"router-policy-sync::{policy}", "address": address}),
        **kwargs,
    )


def comments(router: FakeRouter) -> list[str]:
    return [row.get("comment", "") for row in router.rows[F]]


# --- order, ids, results -------------------------------------------------------------------


def test_changes_run_in_plan_order_and_later_rules_go_before_rules_created_earlier() -> None:
    router = FakeRouter({F: [MARKER]})
    plan = [
        entry("192.0.2.1"),
        rule("b", destination="router-policy-sync::marker", destination_id="*M"),
        rule("a", destination="b"),  # b's id is learnt when it is created
    ]
    result = run(plan, router)
    assert result.ok
    assert result.done == plan
    assert comments(router) == ["a", "b", "router-policy-sync::marker"]
    assert router.writes() == [
        ("create", L, dict(plan[0].after), None),
        ("create", F, dict(plan[1].after), "*M"),
        ("create", F, dict(plan[2].after), "*101"),
    ]


def test_a_move_goes_before_its_destination_and_its_id_is_used_by_the_next() -> None:
    router = FakeRouter({F: [{".id": "*1", "comment": "b"}, {".id": "*2", "comment": "a"}, MARKER]})
    plan = [
        rule("b", action=Action.MOVE, id="*1", destination="marker-key", destination_id="*M"),
        rule("a", action=Action.MOVE, id="*2", destination="b"),
    ]
    result = run(plan, router)
    assert result.ok
    assert router.writes() == [("move", F, ["*1"], "*M"), ("move", F, ["*2"], "*1")]
    assert comments(router) == ["a", "b", "router-policy-sync::marker"]


def test_updates_and_deletes_address_the_row_by_id() -> None:
    router = FakeRouter({N: [{".id": "*7", "to-ports": "80"}, {".id": "*8"}]})
    plan = [
        Change(
            action=Action.UPDATE,
            table=N,
            key="k",
            policy="web",
            reason="drift",
            id="*7",
            after={"to-ports": "81"},
        ),
        Change(action=Action.DELETE, table=N, key="d", policy="old", reason="gone", id="*8"),
    ]
    result = run(plan, router)
    assert result.ok
    assert router.writes() == [("update", N, "*7", {"to-ports": "81"}), ("delete", N, "*8")]
    assert router.rows[N] == [{".id": "*7", "to-ports": "81"}]
    assert result.done_by_policy() == {
        "web": Counter({Action.UPDATE: 1}),
        "old": Counter({Action.DELETE: 1}),
    }


def test_apply_result_is_ok_only_without_failures_and_skips() -> None:
    change = rule("a")
    assert ApplyResult().ok
    assert not ApplyResult(failed=[(change, "x")]).ok
    assert not ApplyResult(skipped=[change]).ok
    assert ApplyResult(done=[change]).ok
    assert ApplyResult().done_by_policy() == {}
    done = ApplyResult(done=[rule("a"), rule("b"), rule("c", "dns"), entry("192.0.2.1")])
    assert done.done_by_policy() == {
        "web": Counter({Action.CREATE: 3}),
        "dns": Counter({Action.CREATE: 1}),
    }


# --- per-policy failure, global stop ---------------------------------------------------------


def test_a_failed_write_skips_the_rest_of_its_policy_and_the_others_go_on() -> None:
    router = FakeRouter()
    router.fail["create"] = [(refused(400, "no such list"), False)]
    plan = [entry("192.0.2.1"), entry("192.0.2.2"), entry("192.0.2.9", "dns"), entry("192.0.2.3")]
    result = run(plan, router)
    assert [change for change, _ in result.failed] == [plan[0]]
    assert result.failed[0][1] == "PUT x: 400 no such list"
    assert result.skipped == [plan[1], plan[3]]
    assert result.done == [plan[2]]
    assert result.failed_policies == {"web": "PUT x: 400 no such list"}
    assert not result.ok


def test_the_first_failure_of_a_policy_is_the_one_kept() -> None:
    router = FakeRouter()
    router.fail["create"] = [(refused(400, "first"), False), (refused(400, "second"), False)]
    result = run([entry("192.0.2.1", "a"), entry("192.0.2.2", "b")], router)
    assert result.failed_policies == {"a": "PUT x: 400 first", "b": "PUT x: 400 second"}


@pytest.mark.parametrize(
    "error",
    [
        RouterAuthError("PUT", "x", 401, "unauthorized"),
        RouterDeadline("PUT", "x", None, "deadline passed"),
    ],
)
def test_authentication_or_deadline_stops_every_policy(error: RouterError) -> None:
    router = FakeRouter()
    router.fail["create"] = [(error, False)]
    plan = [entry("192.0.2.9", "dns"), entry("192.0.2.1"), entry("192.0.2.2", "other")]
    router.fail["create"] = [(refused(400, "x"), False), (error, False)]
    result = run(plan, router)
    assert [change for change, _ in result.failed] == [plan[0], plan[1]]
    assert result.failed[1][1] == str(error)
    assert result.skipped == [plan[2]]
    assert result.done == []
    # the policy that failed first keeps its own message; after the deadline, a policy not
    # started yet is not reached (the next run continues), not failed
    if isinstance(error, RouterDeadline):
        assert result.failed_policies == {"dns": "PUT x: 400 x", "web": str(error)}
        assert result.not_reached == {"other": NOT_REACHED}
    else:
        assert result.failed_policies == {
            "dns": "PUT x: 400 x", "web": str(error), "other": str(error)
        }  # fmt: skip
        assert result.not_reached == {}
    assert len(router.writes()) == 2


# --- ambiguous writes: re-read before deciding ----------------------------------------------


def test_an_ambiguous_create_that_took_effect_is_adopted_not_repeated() -> None:
    router = FakeRouter({F: [MARKER]})
    router.fail["create"] = [(ambiguous(), True)]
    plan = [
        rule("b", destination="router-policy-sync::marker", destination_id="*M"),
        rule("a", destination="b"),
    ]
    result = run(plan, router)
    assert result.ok
    assert comments(router) == ["a", "b", "router-policy-sync::marker"]
    assert ("find", F, {"comment": "b"}) in router.calls
    # the adopted rule's id places the next one
    assert router.writes()[-1] == ("create", F, dict(plan[1].after), "*100")


def test_an_ambiguous_entry_create_is_looked_up_by_list_and_address() -> None:
    router = FakeRouter()
    router.fail["create"] = [(ambiguous(), True)]
    change = entry("192.0.2.1", after={"list": "l", "address": "192.0.2.1", "comment": "c"})
    assert run([change], router).ok
    assert router.calls[1] == ("find", L, {"list": "l", "address": "192.0.2.1"})
    assert len(router.rows[L]) == 1


def test_an_ambiguous_create_that_did_not_take_effect_is_sent_once_more() -> None:
    router = FakeRouter()
    router.fail["create"] = [(ambiguous(), False)]
    change = entry("192.0.2.1")
    result = run([change], router)
    assert result.ok
    assert [c[0] for c in router.calls] == ["create", "find", "create"]
    assert len(router.rows[L]) == 1


def test_a_second_ambiguous_create_fails_the_policy() -> None:
    router = FakeRouter()
    router.fail["create"] = [(ambiguous(), False), (ambiguous(), False)]
    result = run([entry("192.0.2.1")], router)
    assert not result.ok
    assert [c[0] for c in router.calls] == ["create", "find", "create"]


def test_a_duplicate_refusal_adopts_the_existing_row() -> None:
    existing = {".id": "*5", "list": "router-policy-sync::web", "address": "192.0.2.1"}
    router = FakeRouter({L: [existing]})
    router.fail["create"] = [(refused(400, "failure: already have such entry"), False)]
    result = run([entry("192.0.2.1")], router)
    assert result.ok
    assert router.rows[L] == [existing]
    assert [c[0] for c in router.calls] == ["create", "find"]


def test_a_duplicate_refusal_without_a_row_to_adopt_fails_without_retry() -> None:
    router = FakeRouter()
    router.fail["create"] = [(refused(400, "failure: already have such entry"), False)]
    result = run([entry("192.0.2.1")], router)
    assert not result.ok
    assert [c[0] for c in router.calls] == ["create", "find"]


@pytest.mark.parametrize(
    "error",
    [
        refused(400, "input does not match any value of protocol"),
        refused(500, "already have such entry"),  # a duplicate is a 400
    ],
)
def test_a_plain_create_refusal_is_not_looked_up(error: RouterError) -> None:
    router = FakeRouter()
    router.fail["create"] = [(error, False)]
    result = run([entry("192.0.2.1")], router)
    assert not result.ok
    assert [c[0] for c in router.calls] == ["create"]


def _delete(id: str = "*5") -> Change:
    return Change(action=Action.DELETE, table=L, key="k", policy="web", reason="gone", id=id)


def test_a_delete_of_a_gone_row_is_done() -> None:
    router = FakeRouter({L: [{".id": "*5"}]})
    router.fail["delete"] = [(refused(404, "no such item"), False)]
    result = run([_delete()], router)
    assert result.ok
    assert [c[0] for c in router.calls] == ["delete"]


def test_an_ambiguous_delete_is_repeated_only_while_the_row_is_there() -> None:
    router = FakeRouter({L: [{".id": "*5"}]})
    router.fail["delete"] = [(ambiguous(), False)]
    assert run([_delete()], router).ok
    assert router.calls == [("delete", L, "*5"), ("get", L, "*5"), ("delete", L, "*5")]
    assert router.rows[L] == []

    router = FakeRouter({L: [{".id": "*5"}]})
    router.fail["delete"] = [(ambiguous(), True)]
    assert run([_delete()], router).ok
    assert router.calls == [("delete", L, "*5"), ("get", L, "*5")]


def test_a_refused_delete_fails() -> None:
    router = FakeRouter({L: [{".id": "*5"}]})
    router.fail["delete"] = [(refused(500, "busy"), False)]
    result = run([_delete()], router)
    assert not result.ok
    assert router.calls == [("delete", L, "*5")]


def _update(after: Mapping[str, str]) -> Change:
    return Change(
        action=Action.UPDATE, table=N, key="k", policy="web", reason="drift", id="*7", after=after
    )


def test_an_ambiguous_update_that_holds_is_not_sent_again() -> None:
    router = FakeRouter({N: [{".id": "*7", "dst-port": "80", "protocol": "tcp"}]})
    router.fail["update"] = [(ambiguous(), True)]
    # the values read back are compared normalised: "443,80" holds "80,443"
    assert run([_update({"dst-port": "443,80", "protocol": "tcp"})], router).ok
    assert [c[0] for c in router.calls] == ["update", "get"]


def test_an_ambiguous_update_read_back_normalised() -> None:
    router = FakeRouter({N: [{".id": "*7", "dst-port": "80"}]})
    router.fail["update"] = [(ambiguous(), False)]
    router.rows[N][0]["dst-port"] = "443, 80"
    assert run([_update({"dst-port": "80,443"})], router).ok
    assert [c[0] for c in router.calls] == ["update", "get"]


def test_an_ambiguous_update_that_did_not_hold_is_sent_once_more() -> None:
    router = FakeRouter({N: [{".id": "*7", "dst-port": "80", "protocol": "tcp"}]})
    router.fail["update"] = [(ambiguous(), False)]
    assert run([_update({"dst-port": "81", "protocol": "tcp"})], router).ok
    assert [c[0] for c in router.calls] == ["update", "get", "update"]
    assert router.rows[N][0]["dst-port"] == "81"


def test_an_update_whose_fields_are_absent_counts_as_not_held() -> None:
    router = FakeRouter({N: [{".id": "*7"}]})
    router.fail["update"] = [(ambiguous(), False)]
    assert run([_update({"to-ports": "80"})], router).ok
    assert [c[0] for c in router.calls] == ["update", "get", "update"]


def test_an_ambiguous_update_of_a_gone_row_fails() -> None:
    router = FakeRouter({N: [{".id": "*7"}]})
    router.fail["update"] = [(ambiguous(), False)]
    del router.rows[N][0]
    result = run([_update({"to-ports": "80"})], router)
    assert not result.ok
    assert [c[0] for c in router.calls] == ["update", "get"]


def test_a_refused_update_is_not_read_back() -> None:
    router = FakeRouter({N: [{".id": "*7"}]})
    router.fail["update"] = [(refused(), False)]
    assert not run([_update({"to-ports": "80"})], router).ok
    assert [c[0] for c in router.calls] == ["update"]


def _move() -> Change:
    return rule("a", action=Action.MOVE, id="*1", destination="m", destination_id="*M")


def test_an_ambiguous_move_is_repeated_once_its_rule_is_known_to_exist() -> None:
    router = FakeRouter({F: [{".id": "*1", "comment": "a"}, {".id": "*2"}, MARKER]})
    router.fail["move"] = [(ambiguous(), False)]
    assert run([_move()], router).ok
    assert router.writes() == [("move", F, ["*1"], "*M"), ("move", F, ["*1"], "*M")]
    assert ("get", F, "*1") in router.calls


def test_an_ambiguous_move_of_a_gone_rule_fails_and_a_refused_one_is_not_read() -> None:
    router = FakeRouter({F: [MARKER]})  # *1 is gone
    router.fail["move"] = [(ambiguous(), False)]
    assert not run([_move()], router).ok
    assert [c[0] for c in router.calls] == ["move", "get"]

    router = FakeRouter({F: [{".id": "*1"}, MARKER]})
    router.fail["move"] = [(refused(), False)]
    assert not run([_move()], router).ok
    assert [c[0] for c in router.calls] == ["move"]


# --- placement -------------------------------------------------------------------------------


def test_a_rule_whose_successor_failed_goes_before_the_successors_successor() -> None:
    router = FakeRouter({F: [MARKER]})
    router.fail["create"] = [(refused(400, "x"), False)]
    plan = [
        rule("c", "dns", destination="router-policy-sync::marker", destination_id="*M"),
        rule("b", "web", destination="c"),
    ]
    result = run(plan, router)
    assert result.done == [plan[1]]
    assert router.writes()[-1] == ("create", F, dict(plan[1].after), "*M")


def test_placement_falls_back_along_a_chain_of_failures_to_a_rule_in_place() -> None:
    router = FakeRouter({F: [{".id": "*9", "comment": "z"}, MARKER]})
    router.fail["create"] = [(refused(400, "x"), False), (refused(400, "y"), False)]
    plan = [
        rule("d", "p1", destination="z", destination_id="*9"),
        rule("c", "p2", destination="d"),
        rule("b", "p3", destination="c"),
    ]
    result = run(plan, router)
    assert result.done == [plan[2]]
    assert router.writes()[-1] == ("create", F, dict(plan[2].after), "*9")


def test_a_failed_move_falls_back_to_the_moved_rules_destination() -> None:
    router = FakeRouter({F: [{".id": "*1", "comment": "c"}, MARKER]})
    router.fail["move"] = [(refused(400, "x"), False)]
    plan = [
        rule("c", "p1", action=Action.MOVE, id="*1", destination="m", destination_id="*M"),
        rule("b", "p2", destination="c", destination_id="*1"),
    ]
    result = run(plan, router)
    assert result.done == [plan[1]]
    assert router.writes()[-1] == ("create", F, dict(plan[1].after), "*M")


def test_a_destination_known_only_by_id_is_used_as_is() -> None:
    router = FakeRouter({F: [{".id": "*9", "comment": "z"}, MARKER]})
    result = run([rule("b", destination="z", destination_id="*9")], router)
    assert result.ok
    assert router.writes() == [("create", F, {"chain": "forward", "comment": "b"}, "*9")]


def test_a_destination_that_neither_exists_nor_is_created_fails_only_its_policy() -> None:
    router = FakeRouter({F: [MARKER]})
    plan = [rule("b", "p1", destination="nowhere"), entry("192.0.2.1", "p2")]
    result = run(plan, router)
    assert result.done == [plan[1]]
    assert [change for change, _ in result.failed] == [plan[0]]
    assert result.failed[0][1] == "cannot place b: nowhere does not exist"
    assert router.writes() == [("create", L, dict(plan[1].after), None)]


def test_a_cycle_of_destinations_fails_instead_of_looping() -> None:
    router = FakeRouter({F: [MARKER]})
    plan = [rule("a", "p1", destination="b"), rule("b", "p2", destination="a")]
    result = run(plan, router)
    assert [error for _, error in result.failed] == [
        "cannot place a: b was not placed",
        "cannot place b: a was not placed",
    ]
    assert router.writes() == []


def test_a_create_without_destination_is_appended() -> None:
    router = FakeRouter({N: [{".id": "*1"}]})
    assert run([Change(action=Action.CREATE, table=N, key="n", policy="p", reason="r",
                       after={"comment": "n"})], router).ok  # fmt: skip
    assert router.writes() == [("create", N, {"comment": "n"}, None)]


def test_a_create_sent_once_more_keeps_its_place() -> None:
    router = FakeRouter({F: [MARKER]})
    router.fail["create"] = [(ambiguous(), False)]
    change = rule("a", destination="router-policy-sync::marker", destination_id="*M")
    assert run([change], router).ok
    assert router.writes() == [("create", F, dict(change.after), "*M")] * 2
    assert comments(router) == ["a", "router-policy-sync::marker"]
