"""`--output markdown`: the plan as a Markdown document for a pull-request comment.

Built from the same RunReport as the text and JSON (`sync_job.render`), and printing nothing
they do not: no password, no token, no URL. The layout: a hidden marker (so a CI job can find
and update its one comment), a one-line summary, what stops or holds back the run, a table of
changes grouped by policy (+ ~ ↕ -) with each policy's would-be status, the details folded in
`<details>`, and what the exit code means. Text from the cluster (messages, field values) is
escaped for table cells and fenced so it can never close a block or inject HTML.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from sync_job.model import Action
from sync_job.render import change_lines
from sync_job.report import Change, RunReport, held_back_note

# The first line of every comment; CI looks for it to update its comment instead of adding one.
COMMENT_MARKER = "<!-- router-policy-sync plan -->"
# What each exit code means (README: Exit codes), for the reader of the comment.
MEANINGS = {
    0: "success: the router and the RouterPolicy objects are in sync",
    1: "failure: a read or write failed, a policy would not be Synced, or removals are held back",
    2: "drift: a run would change the router or the RouterPolicy objects as listed above",
}


def exit_code(report: RunReport, *, check: bool) -> int:
    """The exit code the command gives for `report` (sync_job.job.exit_code decides it; a CLI
    test holds this copy to it)."""
    if report.failed or report.held_back:
        return 1
    return 2 if check and report.drift else 0


def _cell(text: str) -> str:
    """Text safe inside a table cell: one line, no `|`, no HTML, no code span breaking out."""
    text = " ".join(text.split())
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(raw, safe)
    return text


def _fenced(lines: Iterable[str]) -> list[str]:
    """A code block whose fence is longer than any run of backticks inside it."""
    body = list(lines)
    longest = max((len(run) for line in body for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *body, fence]


def _summary(report: RunReport, check: bool) -> str:
    counts = report.plan.counts()
    router = (
        "router: " + ", ".join(f"{counts[a]} {a.symbol}" for a in Action)
        if report.plan
        else "no router changes"
    )
    kube = len(report.kube_changes)
    kube_text = f", {kube} RouterPolicy change{'s' if kube != 1 else ''}" if kube else ""
    held = f", {len(report.held_back)} policy removals held back" if report.held_back else ""
    if report.marker_error:
        state = "**Blocked**: nothing would be written"
    elif check:
        state = "**Drift**" if report.drift or report.held_back else "**In sync**"
    else:
        state = "**Applied**"
    return f"{state}: {router}{kube_text}{held}."


def _status(report: RunReport, name: str) -> str:
    outcome = next((o for o in report.outcomes if o.name == name), None)
    if outcome is None:
        held = any(h.policy == name for h in report.held_back)
        return "removal held back (mass-removal guard)" if held else "removed"
    mark = "✅" if outcome.ready else "❌"
    return _cell(f"{mark} {outcome.reason.value}: {outcome.message}")


def to_markdown(report: RunReport, *, check: bool) -> str:
    lines = [COMMENT_MARKER, "### router-policy-sync plan", "", _summary(report, check), ""]
    if report.marker_error:
        lines += [f"> **Nothing will be written:** {_cell(report.marker_error)}", ""]
    for warning in report.warnings:
        lines += [f"> **Warning:** {_cell(warning)}", ""]
    if report.held_back:
        lines += [f"> **Mass removal:** {_cell(held_back_note(report, check=check))}.", ""]
    by_policy: dict[str, list[Change]] = {}
    for change in report.plan.changes:
        by_policy.setdefault(change.policy, []).append(change)
    held = {h.policy: h for h in report.held_back}
    names = sorted({*by_policy, *held, *(o.name for o in report.outcomes)})
    if names:
        lines += ["| policy | + | ~ | ↕ | - | would-be status |", "|---|--:|--:|--:|--:|---|"]
        for name in names:
            counts = Counter(change.action for change in by_policy.get(name, ()))
            deletes = f"{counts[Action.DELETE]}" + (
                f" (+{held[name].total} held back)" if name in held else ""
            )
            lines.append(
                f"| `{name}` | {counts[Action.CREATE]} | {counts[Action.UPDATE]} | "
                f"{counts[Action.MOVE]} | {deletes} | {_status(report, name)} |"
            )
        lines.append("")
    if report.plan:
        lines += ["<details><summary>Router changes</summary>", ""]
        for name, changes in sorted(by_policy.items()):
            lines += [f"**`{name}`**", ""]
            lines += _fenced(line for change in changes for line in change_lines(change, ""))
            lines.append("")
        lines += ["</details>", ""]
    if report.kube_changes:
        lines += ["<details><summary>RouterPolicy changes</summary>", ""]
        body = []
        for kube in report.kube_changes:
            body.append(f"{kube.action.symbol} routerpolicy {kube.name}")
            body += [f"    {detail}" for detail in kube.detail]
        lines += [*_fenced(body), "", "</details>", ""]
    if report.applied is not None:
        applied = report.applied
        lines += [
            f"Applied: {len(applied.done)} done, {len(applied.failed)} failed, "
            f"{len(applied.skipped)} skipped.",
            "",
        ]
    code = exit_code(report, check=check)
    lines.append(f"Exit code **{code}**: {MEANINGS[code]}.")
    if check:
        lines.append("(`--check`: nothing was written; 64 would mean a usage error.)")
    return "\n".join(lines) + "\n"
