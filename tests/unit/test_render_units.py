"""The plan as printed: every line of the text output and every key of the JSON document, from
hand-built RunReports (no router, no cluster)."""

from __future__ import annotations

import json

from sync_job.model import Action, PolicyOutcome, Reason
from sync_job.render import FORMAT_VERSION, to_json, to_text
from sync_job.report import ApplyResult, Change, KubeChange, Plan, RunReport
from sync_job.router.tables import Table

CREATE = Change(
    action=Action.CREATE,
    table=Table.FILTER,
    key="router-policy-sync::web::tcp",
    policy="web",
    reason="missing",
    after={"chain": "forward", "dst-port": "80", "comment": "router-policy-sync::web::tcp"},
    destination="router-policy-sync::marker",
    destination_id="*2",
)
NAT_CREATE = Change(
    action=Action.CREATE,
    table=Table.NAT,
    key="router-policy-sync::web::tcp::80",
    policy="web",
    reason="missing",
    after={"chain": "dstnat", "to-ports": "80"},
)
UPDATE = Change(
    action=Action.UPDATE,
    table=Table.NAT,
    key="router-policy-sync::web::tcp::80",
    policy="web",
    reason="drift",
    id="*9",
    before={"to-addresses": "10.0.0.4"},
    after={"to-addresses": "10.0.0.5", "disabled": "false", "in-interface-list": ""},
)
MOVE = Change(
    action=Action.MOVE,
    table=Table.FILTER,
    key="router-policy-sync::web::udp",
    policy="web",
    reason="not directly above the marker",
    id="*7",
    destination="router-policy-sync::marker",
    destination_id="*2",
)
DELETE = Change(
    action=Action.DELETE,
    table=Table.ADDRESS_LIST,
    key="router-policy-sync::old 192.0.2.1",
    policy="old",
    reason="no longer wanted",
    id="*5",
    before={"list": "router-policy-sync::old", "address": "192.0.2.1"},
)
READY = PolicyOutcome("web", Reason.SYNCED, "router in sync", 3, "10.0.0.5", "default/web")
BROKEN = PolicyOutcome("bad", Reason.VALIDATION_FAILED, "fromCIDR[0] is not /32")


def _report(**overrides: object) -> RunReport:
    fields: dict[str, object] = {
        "outcomes": [],
        "plan": Plan(),
        "kube_changes": [],
    }
    fields.update(overrides)
    return RunReport(**fields)  # type: ignore[arg-type]


def test_nothing_to_do_prints_only_the_summary() -> None:
    assert to_text(_report(), check=False) == "No changes.\n"
    assert to_text(_report(), check=True) == "No changes.\nIn sync.\n"


def test_every_kind_of_router_change_as_text() -> None:
    plan = Plan((CREATE, NAT_CREATE, UPDATE, MOVE, DELETE))
    text = to_text(_report(plan=plan), check=True)
    assert text.splitlines() == [
        "Router changes:",
        "  + ipv4 filter router-policy-sync::web::tcp (before router-policy-sync::marker)",
        "      chain=forward dst-port=80",
        "  + ipv4 nat router-policy-sync::web::tcp::80",
        "      chain=dstnat to-ports=80",
        "  ~ ipv4 nat router-policy-sync::web::tcp::80",
        "      to-addresses: '10.0.0.4' -> '10.0.0.5'",
        "      disabled: (unset) -> 'false'",
        "      in-interface-list: (unset) -> (unset)",
        "  ↕ ipv4 filter router-policy-sync::web::udp: move before router-policy-sync::marker",
        "  - ipv4 address-list router-policy-sync::old 192.0.2.1 (no longer wanted)",
        "",
        "Plan: 2 to create, 1 to update, 1 to move, 1 to delete.",
        "Drift detected.",
    ]


def test_an_update_that_removes_a_property_shows_the_old_value() -> None:
    change = Change(
        action=Action.UPDATE,
        table=Table.FILTER,
        key="k",
        policy="p",
        reason="drift",
        before={"in-interface-list": "WAN"},
        after={"in-interface-list": ""},
    )
    lines = to_text(_report(plan=Plan((change,))), check=False).splitlines()
    assert lines[1:3] == ["  ~ ipv4 filter k", "      in-interface-list: 'WAN' -> (unset)"]


def test_marker_error_kube_changes_outcomes_and_apply_summary_as_text() -> None:
    applied = ApplyResult(done=[CREATE, MOVE], failed=[(DELETE, "boom")], skipped=[UPDATE])
    report = _report(
        marker_error="no filter rule with comment 'router-policy-sync::marker'",
        outcomes=[READY, BROKEN],
        kube_changes=[
            KubeChange(Action.CREATE, "web"),
            KubeChange(Action.UPDATE, "bad", ("replace /conditions/0/reason 'x'", "add /y 1")),
            KubeChange(Action.DELETE, "gone", ("its Cilium policy is gone",)),
            KubeChange(Action.DELETE, "gone2"),
        ],
        applied=applied,
    )
    assert to_text(report, check=False).splitlines() == [
        "Router: nothing will be written:",
        "  no filter rule with comment 'router-policy-sync::marker'",
        "",
        "RouterPolicy changes:",
        "  + routerpolicy web",
        "  ~ routerpolicy bad",
        "      replace /conditions/0/reason 'x'",
        "      add /y 1",
        "  - routerpolicy gone",
        "      its Cilium policy is gone",
        "  - routerpolicy gone2",
        "",
        "Policies:",
        "  web: Ready (Synced) router in sync",
        "  bad: NOT ready (ValidationFailed) fromCIDR[0] is not /32",
        "",
        "No changes.",
        "RouterPolicy objects: 1 to create, 1 to update, 2 to delete.",
        "Applied: 2 done, 1 failed, 1 skipped.",
    ]


def test_check_mode_never_prints_the_apply_line() -> None:
    report = _report(applied=ApplyResult(), kube_changes=[KubeChange(Action.CREATE, "web")])
    lines = to_text(report, check=True).splitlines()
    assert lines[-2:] == ["RouterPolicy objects: 1 to create.", "Drift detected."]
    assert to_text(_report(applied=ApplyResult()), check=False).splitlines() == [
        "No changes.",
        "Applied: 0 done, 0 failed, 0 skipped.",
    ]


def test_json_document_of_a_check_run() -> None:
    plan = Plan((CREATE, UPDATE, DELETE))
    report = _report(
        plan=plan,
        outcomes=[READY, BROKEN],
        kube_changes=[KubeChange(Action.DELETE, "gone", ("why",))],
        statuses={"web": {"gatewayIP": "10.0.0.5"}},
        marker_error=None,
        kube_errors=["POST x: 403"],
    )
    document = json.loads(to_json(report, check=True))
    assert document == {
        "format_version": FORMAT_VERSION,
        "mode": "check",
        "drift": True,
        "marker_error": None,
        "router": {
            "system": None,
            "summary": {"create": 1, "update": 1, "move": 0, "delete": 1},
            "changes": [
                {
                    "action": "create",
                    "table": "ip/firewall/filter",
                    "family": "ipv4",
                    "key": "router-policy-sync::web::tcp",
                    "policy": "web",
                    "reason": "missing",
                    "id": None,
                    "before": None,
                    "after": dict(CREATE.after),
                    "unset": [],
                    "destination": "router-policy-sync::marker",
                },
                {
                    "action": "update",
                    "table": "ip/firewall/nat",
                    "family": "ipv4",
                    "key": "router-policy-sync::web::tcp::80",
                    "policy": "web",
                    "reason": "drift",
                    "id": "*9",
                    "before": {"to-addresses": "10.0.0.4"},
                    "after": dict(UPDATE.after),
                    "unset": ["in-interface-list"],
                    "destination": None,
                },
                {
                    "action": "delete",
                    "table": "ip/firewall/address-list",
                    "family": "ipv4",
                    "key": "router-policy-sync::old 192.0.2.1",
                    "policy": "old",
                    "reason": "no longer wanted",
                    "id": "*5",
                    "before": dict(DELETE.before),
                    "after": None,
                    "unset": [],
                    "destination": None,
                },
            ],
        },
        "routerpolicies": {"changes": [{"action": "delete", "name": "gone", "detail": ["why"]}]},
        "policies": [
            {
                "name": "web",
                "ready": True,
                "reason": "Synced",
                "message": "router in sync",
                "gatewayIP": "10.0.0.5",
                "gatewayIPv6": None,
                "status": {"gatewayIP": "10.0.0.5"},
            },
            {
                "name": "bad",
                "ready": False,
                "reason": "ValidationFailed",
                "message": "fromCIDR[0] is not /32",
                "gatewayIP": None,
                "gatewayIPv6": None,
                "status": None,
            },
        ],
        "apply": None,
        "kube_errors": ["POST x: 403"],
    }


def test_json_of_an_apply_run_with_a_marker_error() -> None:
    applied = ApplyResult(done=[CREATE], failed=[(DELETE, "boom")], skipped=[UPDATE, MOVE])
    text = to_json(_report(applied=applied, marker_error="no marker"), check=False)
    document = json.loads(text)
    assert document["mode"] == "apply"
    assert document["drift"] is True
    assert document["marker_error"] == "no marker"
    assert document["apply"] == {
        "done": 1,
        "failed": [{"key": "router-policy-sync::old 192.0.2.1", "error": "boom"}],
        "skipped": 2,
        "not_kept": [],
    }
    assert document["router"]["summary"] == {"create": 0, "update": 0, "move": 0, "delete": 0}
    # indented, keys in the documented order (a consumer may read it with line tools)
    assert text.startswith('{\n  "format_version": "1.0",\n  "mode": "apply",\n  "drift": true,')
    assert list(document) == [
        "format_version",
        "mode",
        "drift",
        "marker_error",
        "router",
        "routerpolicies",
        "policies",
        "apply",
        "kube_errors",
    ]


def test_json_of_a_quiet_run_is_not_drift() -> None:
    document = json.loads(to_json(_report(), check=True))
    assert document["drift"] is False
    assert document["router"]["changes"] == []
    assert document["routerpolicies"] == {"changes": []}
    assert document["policies"] == []
    assert document["kube_errors"] == []
