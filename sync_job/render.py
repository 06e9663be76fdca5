"""The plan as people and programs read it: text (Terraform-like) and versioned JSON.

Both are built from the same RunReport; the text is never parsed by anything. Bump
FORMAT_VERSION on any change that could break a consumer of the JSON. An update's empty value
removes the property: the text shows it as `(unset)`, the JSON also lists it under `unset`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sync_job.model import Action
from sync_job.report import Change, HeldBack, KubeChange, RunReport, held_back_note

FORMAT_VERSION = "1.0"


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "table": change.table.value,
        "family": change.table.family.value,
        "key": change.key,
        "policy": change.policy,
        "reason": change.reason,
        "id": change.id,
        "before": dict(change.before) or None,
        "after": dict(change.after) or None,
        "unset": [name for name, value in change.after.items() if not value],
        "destination": change.destination,
    }


def _kube_json(change: KubeChange) -> dict[str, Any]:
    return {"action": change.action.value, "name": change.name, "detail": list(change.detail)}


def _held_json(held: HeldBack) -> dict[str, Any]:
    deletes = {table.value: count for table, count in held.deletes.items()}
    return {"policy": held.policy, "deletes": deletes, "total": held.total}


def to_json(report: RunReport, *, check: bool) -> str:
    counts = report.plan.counts()
    applied = report.applied
    document = {
        "format_version": FORMAT_VERSION,
        "mode": "check" if check else "apply",
        "drift": report.drift,
        "marker_error": report.marker_error,
        # only when there is one, so a plan without warnings reads as before
        **({"warnings": list(report.warnings)} if report.warnings else {}),
        # the mass-removal guard, likewise only when it held something back
        **(
            {
                "held_back": {
                    "message": held_back_note(report, check=check),
                    "owning_policies": report.owning_policies,
                    "policies": [_held_json(held) for held in report.held_back],
                }
            }
            if report.held_back
            else {}
        ),
        "router": {
            "system": report.router_system,
            "summary": {action.value: counts[action] for action in Action},
            "changes": [_change_json(change) for change in report.plan.changes],
        },
        "routerpolicies": {"changes": [_kube_json(change) for change in report.kube_changes]},
        "policies": [
            {
                "name": outcome.name,
                "ready": outcome.ready,
                "reason": outcome.reason.value,
                "message": outcome.message,
                "gatewayIP": outcome.gateway_ip,
                "gatewayIPv6": outcome.gateway_ip6,
                "status": report.statuses.get(outcome.name),
            }
            for outcome in report.outcomes
        ],
        "apply": None
        if applied is None
        else {
            "done": len(applied.done),
            "failed": [{"key": c.key, "error": error} for c, error in applied.failed],
            "skipped": len(applied.skipped),
            "not_kept": report.not_kept,
        },
        "kube_errors": report.kube_errors,
    }
    return json.dumps(document, indent=2, sort_keys=False)


def _fields(fields: dict[str, str]) -> str:
    return " ".join(f"{name}={value}" for name, value in fields.items() if name != "comment")


def change_lines(change: Change, indent: str = "  ") -> list[str]:
    """One router change as the text plan shows it (the Markdown plan reuses it, unindented)."""
    head = f"{indent}{change.action.symbol} {change.table.label} {change.key}"
    detail = indent + "    "
    if change.action is Action.CREATE:
        where = f" (before {change.destination})" if change.destination else ""
        return [head + where, f"{detail}{_fields(dict(change.after))}"]
    if change.action is Action.UPDATE:
        lines = [head]
        for name, value in change.after.items():
            old = change.before.get(name)
            new = repr(value) if value else "(unset)"
            lines.append(f"{detail}{name}: {'(unset)' if old is None else repr(old)} -> {new}")
        return lines
    if change.action is Action.MOVE:
        return [f"{head}: move before {change.destination}"]
    return [f"{head} ({change.reason})"]


def to_text(report: RunReport, *, check: bool) -> str:
    lines: list[str] = []
    if report.marker_error:
        menus = " or ".join(f"the {family.value} menus" for family in report.families_blocked)
        where = f" to {menus}" if report.families_planned and menus else ""
        lines += [f"Router: nothing will be written{where}:", f"  {report.marker_error}", ""]
    lines += [f"Warning: {warning}" for warning in report.warnings]
    lines += [""] if report.warnings else []
    if report.plan:
        lines.append("Router changes:")
        for change in report.plan.changes:
            lines += change_lines(change)
        lines.append("")
    if report.held_back:
        lines.append("Held back by the mass-removal guard (nothing of these is deleted):")
        for held in report.held_back:
            tables = ", ".join(f"{n} {table.label}" for table, n in held.deletes.items())
            lines.append(f"  {held.policy}: {held.total} to delete ({tables})")
        lines.append("")
    if report.kube_changes:
        lines.append("RouterPolicy changes:")
        for kube in report.kube_changes:
            lines.append(f"  {kube.action.symbol} routerpolicy {kube.name}")
            lines += [f"      {detail}" for detail in kube.detail]
        lines.append("")
    if report.outcomes:
        lines.append("Policies:")
        for outcome in report.outcomes:
            state = "Ready" if outcome.ready else "NOT ready"
            lines.append(f"  {outcome.name}: {state} ({outcome.reason.value}) {outcome.message}")
        lines.append("")
    lines.append(report.plan.summary())
    if report.kube_changes:
        kinds = Counter(change.action for change in report.kube_changes)
        lines.append(
            "RouterPolicy objects: "
            + ", ".join(f"{kinds[a]} to {a.value}" for a in Action if kinds[a])
            + "."
        )
    if report.held_back:
        lines.append(f"Mass removal: {held_back_note(report, check=check)}.")
    if check:
        lines.append("Drift detected." if report.drift or report.held_back else "In sync.")
    elif report.applied is not None:
        applied = report.applied
        lines.append(
            f"Applied: {len(applied.done)} done, {len(applied.failed)} failed, "
            f"{len(applied.skipped)} skipped."
        )
    if report.not_kept:
        lines.append("Not kept by the router (read back after writing):")
        lines += [f"  {message}" for message in report.not_kept]
    return "\n".join(lines) + "\n"
