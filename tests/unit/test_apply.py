"""The applier's decisions after a failed write, one write at a time, against a scripted writer.

`sync_job.router.apply` promises that a write is never blindly retried: after an ambiguous
failure it re-reads and sends the write again only when the re-read shows it did not take
effect; a create answered `already have such entry` (another run made it) is adopted; a delete
answered 404 (already gone) is done. Each test scripts the router's answers and checks the exact
calls the applier made and what it concluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from sync_job.errors import RouterError
from sync_job.model import Action
from sync_job.router.apply import ApplyResult, apply
from sync_job.router.plan import Change, Plan
from sync_job.router.tables import Table

ENTRY = {"list": "router-policy-sync::web", "address": "192.0.2.1", "comment": "x"}
RULE = {"chain": "forward", "action": "accept", "comment": "router-policy-sync::web::tcp"}


def ambiguous(method: str) -> RouterError:
    return RouterError(method, "ip/firewall/filter", None, "connection lost", ambiguous=True)


def refused(method: str, status: int, detail: str) -> RouterError:
    return RouterError(method, "ip/firewall/address-list", status, detail)


@dataclass
class ScriptedWriter:
    """Records every call; `fail` maps a method to the errors its next calls raise, in order;
    `rows` is what `get` and `find` see."""

    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    fail: dict[str, list[BaseException]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _call(self, method: str, arg: Any) -> None:
        self.calls.append((method, arg))
        errors = self.fail.get(method) or []
        if errors:
            raise errors.pop(0)

    def create(
        self, table: Table, fields: dict[str, str], place_before: str | None = None
    ) -> dict[str, str]:
        self._call("create", fields.get("comment") or fields.get("address"))
        return {".id": "*NEW", **fields}

    def update(self, table: Table, id: str, fields: dict[str, str]) -> None:
        self._call("update", id)

    def delete(self, table: Table, id: str) -> None:
        self._call("delete", id)

    def move(self, table: Table, ids: list[str], destination: str) -> None:
        self._call("move", ids[0])

    def get(self, table: Table, id: str) -> dict[str, str] | None:
        self.calls.append(("get", id))
        return self.rows.get(id)

    def find(self, table: Table, match: dict[str, str]) -> list[dict[str, str]]:
        self.calls.append(("find", match))
        return [r for r in self.rows.values() if all(r.get(k) == v for k, v in match.items())]


def run(writer: ScriptedWriter, *changes: Change) -> ApplyResult:
    return apply(Plan(tuple(changes)), writer)  # type: ignore[arg-type]


UPDATE = Change(
    action=Action.UPDATE,
    table=Table.FILTER,
    key="router-policy-sync::web::tcp",
    policy="web",
    reason="drift",
    id="*7",
    before={"dst-port": "80"},
    after={"dst-port": "80,443"},
)


def test_an_ambiguous_update_that_took_effect_is_not_sent_again() -> None:
    writer = ScriptedWriter(
        rows={"*7": {**RULE, ".id": "*7", "dst-port": "443,80"}},  # took effect (normalised)
        fail={"update": [ambiguous("PATCH")]},
    )
    result = run(writer, UPDATE)
    assert writer.calls == [("update", "*7"), ("get", "*7")]  # one PATCH, then the re-read
    assert result.ok and result.done == [UPDATE]


def test_an_ambiguous_update_that_did_not_take_effect_is_sent_exactly_once_more() -> None:
    writer = ScriptedWriter(
        rows={"*7": {**RULE, ".id": "*7", "dst-port": "80"}},
        fail={"update": [ambiguous("PATCH")]},
    )
    result = run(writer, UPDATE)
    assert writer.calls == [("update", "*7"), ("get", "*7"), ("update", "*7")]
    assert result.ok


def test_an_ambiguous_update_whose_row_is_gone_fails_the_policy_without_resending() -> None:
    writer = ScriptedWriter(fail={"update": [ambiguous("PATCH")]})
    result = run(writer, UPDATE)
    assert writer.calls == [("update", "*7"), ("get", "*7")]
    assert result.failed_policies.keys() == {"web"}


def test_a_refused_update_is_neither_re_read_nor_retried() -> None:
    writer = ScriptedWriter(fail={"update": [refused("PATCH", 400, "failure: bad")]})
    result = run(writer, UPDATE)
    assert writer.calls == [("update", "*7")]
    assert result.failed_policies == {"web": "PATCH ip/firewall/address-list: 400 failure: bad"}


CREATE_ENTRY = Change(
    action=Action.CREATE,
    table=Table.ADDRESS_LIST,
    key="router-policy-sync::web 192.0.2.1",
    policy="web",
    reason="missing",
    after=ENTRY,
)
MATCH = {"list": ENTRY["list"], "address": ENTRY["address"]}


def test_a_create_answered_already_have_such_entry_adopts_the_other_runs_entry() -> None:
    writer = ScriptedWriter(
        rows={"*9": {**ENTRY, ".id": "*9"}},
        fail={"create": [refused("PUT", 400, "failure: already have such entry")]},
    )
    result = run(writer, CREATE_ENTRY)
    assert writer.calls == [("create", "x"), ("find", MATCH)]  # adopted, never sent again
    assert result.ok and result.done == [CREATE_ENTRY]


def test_already_have_such_entry_with_nothing_to_adopt_fails_without_resending() -> None:
    writer = ScriptedWriter(
        fail={"create": [refused("PUT", 400, "failure: already have such entry")]}
    )
    result = run(writer, CREATE_ENTRY)
    assert writer.calls == [("create", "x"), ("find", MATCH)]
    assert result.failed_policies.keys() == {"web"}


def test_an_ambiguous_create_that_took_effect_is_adopted_not_duplicated() -> None:
    writer = ScriptedWriter(fail={"create": [ambiguous("PUT")]})
    writer.rows["*9"] = {**ENTRY, ".id": "*9"}  # the PUT took effect although no reply came
    result = run(writer, CREATE_ENTRY)
    assert writer.calls == [("create", "x"), ("find", MATCH)]
    assert result.ok


def test_an_ambiguous_create_that_did_not_take_effect_is_sent_exactly_once_more() -> None:
    writer = ScriptedWriter(fail={"create": [ambiguous("PUT")]})
    result = run(writer, CREATE_ENTRY)
    assert writer.calls == [("create", "x"), ("find", MATCH), ("create", "x")]
    assert result.ok


DELETE = Change(
    action=Action.DELETE,
    table=Table.FILTER,
    key="router-policy-sync::gone::tcp",
    policy="gone",
    reason="orphan",
    id="*5",
)


def test_a_delete_answered_404_is_done() -> None:
    writer = ScriptedWriter(fail={"delete": [refused("DELETE", 404, "no such item")]})
    result = run(writer, DELETE)
    assert writer.calls == [("delete", "*5")]
    assert result.ok and result.done == [DELETE]


@pytest.mark.parametrize(("still_there", "calls"), [(False, 2), (True, 3)])
def test_an_ambiguous_delete_is_re_read_and_repeated_only_if_the_row_is_still_there(
    still_there: bool, calls: int
) -> None:
    writer = ScriptedWriter(fail={"delete": [ambiguous("DELETE")]})
    if still_there:
        writer.rows["*5"] = {**RULE, ".id": "*5"}
    result = run(writer, DELETE)
    assert writer.calls == [("delete", "*5"), ("get", "*5"), ("delete", "*5")][:calls]
    assert result.ok


def test_a_failed_policy_skips_its_later_changes_and_the_others_go_on() -> None:
    second = Change(
        action=Action.DELETE, table=Table.NAT, key="n", policy="web", reason="orphan", id="*8"
    )
    writer = ScriptedWriter(fail={"update": [refused("PATCH", 400, "failure: bad")]})
    result = run(writer, UPDATE, second, DELETE)
    assert writer.calls == [("update", "*7"), ("delete", "*5")]
    assert result.skipped == [second] and result.done == [DELETE]
