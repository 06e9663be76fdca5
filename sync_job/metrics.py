"""Metrics for a batch job: written in the Prometheus text format to a file or a Pushgateway.

The text exposition format is small and stable, so it is written here rather than pulling in a
client library. The last-success timestamp survives a failed run: the Pushgateway gets a POST
(which replaces only the metrics sent), and the textfile carries the previous value over.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from sync_job.model import Action
from sync_job.report import RunReport

log = logging.getLogger(__name__)

PREFIX = "router_policy_sync"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
_HELP = {
    LAST_SUCCESS: "When a run last finished with every policy Synced (Unix seconds).",
    f"{PREFIX}_last_run_timestamp_seconds": "When the last run finished (Unix seconds).",
    f"{PREFIX}_run_duration_seconds": "Wall time of the last run.",
    f"{PREFIX}_run_success": "1 when the last run succeeded, else 0.",
    f"{PREFIX}_policies": "Annotated policies by the reason of their Ready condition.",
    f"{PREFIX}_router_changes": "Router objects changed by the last run, by action.",
    f"{PREFIX}_router_requests": "Requests the last run sent to the router, by HTTP method.",
    f"{PREFIX}_router_objects_not_kept": "Objects the router did not keep after the last run "
    "wrote them (read back).",
    f"{PREFIX}_router_info": "1, labelled with the RouterOS version and board the last writing "
    "run found.",
}


def _line(name: str, value: float, labels: Mapping[str, str] | None = None) -> str:
    def escaped(value: str) -> str:  # the text format's label escaping
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    shown = ",".join(f'{k}="{escaped(v)}"' for k, v in sorted((labels or {}).items()))
    return f"{name}{{{shown}}} {value:g}" if shown else f"{name} {value:g}"


def exposition(
    report: RunReport | None,
    *,
    success: bool,
    finished: float,
    duration: float,
    router_requests: Mapping[str, int],
    last_success: float | None,
) -> str:
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    if success:
        last_success = finished
    if last_success is not None:
        samples[LAST_SUCCESS].append(_line(LAST_SUCCESS, last_success))
    samples[f"{PREFIX}_last_run_timestamp_seconds"].append(
        _line(f"{PREFIX}_last_run_timestamp_seconds", finished)
    )
    samples[f"{PREFIX}_run_duration_seconds"].append(
        _line(f"{PREFIX}_run_duration_seconds", duration)
    )
    samples[f"{PREFIX}_run_success"].append(_line(f"{PREFIX}_run_success", 1 if success else 0))
    if report is not None:
        reasons: dict[str, int] = {}
        for outcome in report.outcomes:
            reasons[outcome.reason.value] = reasons.get(outcome.reason.value, 0) + 1
        for reason in ("Synced", "ValidationFailed", "DiscoveryFailed", "SyncFailed"):
            samples[f"{PREFIX}_policies"].append(
                _line(f"{PREFIX}_policies", reasons.get(reason, 0), {"reason": reason})
            )
        done = report.applied.done if report.applied else []
        for action in Action:
            count = sum(1 for change in done if change.action is action)
            samples[f"{PREFIX}_router_changes"].append(
                _line(f"{PREFIX}_router_changes", count, {"action": action.value})
            )
        samples[f"{PREFIX}_router_objects_not_kept"].append(
            _line(f"{PREFIX}_router_objects_not_kept", len(report.not_kept))
        )
        if report.router_system is not None:
            labels = {
                "version": report.router_system.get("version", ""),
                "board": report.router_system.get("board-name", ""),
            }
            samples[f"{PREFIX}_router_info"].append(_line(f"{PREFIX}_router_info", 1, labels))
    for method, count in sorted(router_requests.items()):
        samples[f"{PREFIX}_router_requests"].append(
            _line(f"{PREFIX}_router_requests", count, {"method": method})
        )
    lines = []
    for name, help_text in _HELP.items():
        if samples[name]:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples[name]]
    return "\n".join(lines) + "\n"


def previous_last_success(path: Path) -> float | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(rf"^{LAST_SUCCESS} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def write_textfile(path: Path, text: str) -> None:
    """Atomically, as the node-exporter textfile collector requires."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def push(url: str, text: str, job: str = "router-policy-sync", timeout: float = 10.0) -> None:
    import httpx

    target = f"{url.rstrip('/')}/metrics/job/{job}"
    try:
        httpx.post(
            target,
            content=text.encode(),
            timeout=timeout,
            headers={"Content-Type": "text/plain; version=0.0.4"},
        ).raise_for_status()
    except httpx.HTTPError as error:
        log.warning("could not push metrics to %s: %s", target, error)
