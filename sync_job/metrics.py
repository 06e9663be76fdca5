"""Metrics for a batch job: one prometheus-client registry per run, written to a textfile or
pushed to a Pushgateway.

This module owns which gauges a run exports (`GAUGES`, the one table: a new gauge is one entry
there), how they are filled from the `RunReport`, and the two ways out: the node-exporter
textfile (`write_textfile`) and the Pushgateway (`push`). The last-success timestamp survives a
failed run: the Pushgateway gets a push-add (POST, which replaces only the metric families
sent, so a run that did not succeed sends none of that gauge), and the textfile carries the
previous value over (`previous_last_success`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge, generate_latest, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from sync_job.model import Action, Reason
from sync_job.report import RunReport

log = logging.getLogger(__name__)

PREFIX = "router_policy_sync"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
JOB = "router-policy-sync"

Samples = Iterable[tuple[Mapping[str, str], float]]


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a gauge is computed from: the run's report (None when the run stopped before one
    was made) and what the job measured around it."""

    report: RunReport | None
    success: bool
    finished: float
    duration: float
    router_requests: Mapping[str, int]
    last_success: float | None


@dataclass(frozen=True, slots=True)
class GaugeSpec:
    """One exported gauge: its name after the prefix, help text, label names (in exposition
    order) and its samples for a run; a gauge with no samples is not exported at all."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: Callable[[RunFacts], Samples]

    @property
    def full_name(self) -> str:
        return f"{PREFIX}_{self.name}"


def _one(value: Callable[[RunFacts], float | None]) -> Callable[[RunFacts], Samples]:
    """An unlabelled gauge, exported when `value` gives a number."""

    def samples(run: RunFacts) -> Samples:
        found = value(run)
        return [] if found is None else [({}, found)]

    return samples


def count(of: Callable[[RunReport], int]) -> Callable[[RunFacts], Samples]:
    """An unlabelled gauge counted from the report, exported whenever there is a report."""
    return _one(lambda run: None if run.report is None else of(run.report))


def _policies(run: RunFacts) -> Samples:
    if run.report is None:
        return []
    reasons = Counter(outcome.reason for outcome in run.report.outcomes)
    return [({"reason": reason.value}, reasons[reason]) for reason in Reason]


def _changes(run: RunFacts) -> Samples:
    if run.report is None:
        return []
    done = Counter(c.action for c in (run.report.applied.done if run.report.applied else []))
    return [({"action": action.value}, done[action]) for action in Action]


def _changes_failed(run: RunFacts) -> Samples:
    if run.report is None:
        return []
    applied = run.report.applied
    failed = Counter(change.action for change, _ in (applied.failed if applied else []))
    return [({"action": action.value}, failed[action]) for action in Action]


def _requests(run: RunFacts) -> Samples:
    return [({"method": method}, n) for method, n in sorted(run.router_requests.items())]


def _router_info(run: RunFacts) -> Samples:
    system = run.report.router_system if run.report else None
    if system is None:
        return []
    return [({"board": system.get("board-name", ""), "version": system.get("version", "")}, 1)]


GAUGES: tuple[GaugeSpec, ...] = (
    GaugeSpec(
        "last_success_timestamp_seconds",
        "When a run last finished with every policy Synced (Unix seconds).",
        (),
        _one(lambda run: run.finished if run.success else run.last_success),
    ),
    GaugeSpec(
        "last_run_timestamp_seconds",
        "When the last run finished (Unix seconds).",
        (),
        _one(lambda run: run.finished),
    ),
    GaugeSpec(
        "run_duration_seconds", "Wall time of the last run.", (), _one(lambda run: run.duration)
    ),
    GaugeSpec(
        "run_success",
        "1 when the last run succeeded, else 0.",
        (),
        _one(lambda run: 1 if run.success else 0),
    ),
    GaugeSpec(
        "policies",
        "Annotated policies by the reason of their Ready condition.",
        ("reason",),
        _policies,
    ),
    GaugeSpec(
        "router_changes",
        "Router objects changed by the last run, by action.",
        ("action",),
        _changes,
    ),
    GaugeSpec(
        "router_changes_failed",
        "Router changes the last run tried and that failed, by action.",
        ("action",),
        _changes_failed,
    ),
    GaugeSpec(
        "router_requests",
        "Requests the last run sent to the router, by HTTP method.",
        ("method",),
        _requests,
    ),
    GaugeSpec(
        "router_objects_not_kept",
        "Objects the router did not keep after the last run wrote them (read back).",
        (),
        count(lambda report: len(report.not_kept)),
    ),
    GaugeSpec(
        "router_removals_held_back",
        "Router objects of removed policies the mass-removal guard held back in the last run.",
        (),
        count(lambda report: sum(held.total for held in report.held_back)),
    ),
    GaugeSpec(
        "router_info",
        "1, labelled with the RouterOS version and board the last writing run found.",
        ("board", "version"),
        _router_info,
    ),
)
METRIC_NAMES: frozenset[str] = frozenset(spec.full_name for spec in GAUGES)


def registry(
    report: RunReport | None,
    *,
    success: bool,
    finished: float,
    duration: float,
    router_requests: Mapping[str, int],
    last_success: float | None,
) -> CollectorRegistry:
    """A fresh registry holding this run's gauges (never the process-global one)."""
    run = RunFacts(report, success, finished, duration, router_requests, last_success)
    made = CollectorRegistry(auto_describe=True)
    for spec in GAUGES:
        samples = list(spec.samples(run))
        if not samples:
            continue
        gauge = Gauge(spec.full_name, spec.help, spec.labels, registry=made)
        for labels, value in samples:
            (gauge.labels(**labels) if spec.labels else gauge).set(value)
    return made


def exposition(
    report: RunReport | None,
    *,
    success: bool,
    finished: float,
    duration: float,
    router_requests: Mapping[str, int],
    last_success: float | None,
) -> str:
    """The run's gauges in the Prometheus text format (what the textfile and the push hold)."""
    made = registry(
        report,
        success=success,
        finished=finished,
        duration=duration,
        router_requests=router_requests,
        last_success=last_success,
    )
    return generate_latest(made).decode()


def previous_last_success(path: Path) -> float | None:
    """The last-success timestamp an earlier run left in the textfile, if it is readable."""
    try:
        text = path.read_text(encoding="utf-8")
        families = list(text_string_to_metric_families(text))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    for family in families:
        for sample in family.samples:
            if sample.name == LAST_SUCCESS:
                return float(sample.value)
    return None


def write_textfile(path: Path, made: CollectorRegistry) -> None:
    """Atomically (a temporary file renamed over it), as the node-exporter textfile collector
    requires."""
    write_to_textfile(str(path), made)


def push(
    url: str,
    made: CollectorRegistry,
    *,
    grouping_key: Mapping[str, str],
    job: str = JOB,
    timeout: float = 10.0,
) -> None:
    """Push-add (POST) the registry under `job` and `grouping_key`; a failure is a warning.

    Credentials in the URL (`http://user:password@host`) become Basic auth and never appear in
    the URL the request or a warning names.
    """
    parts = urlsplit(url)
    handler: Callable[..., Callable[[], None]] = default_handler
    if parts.username is not None:
        handler = partial(
            basic_auth_handler,
            username=unquote(parts.username),
            password=unquote(parts.password or ""),
        )
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port else ""
        url = urlunsplit(parts._replace(netloc=netloc))
    try:
        pushadd_to_gateway(
            url, job, made, grouping_key=dict(grouping_key), timeout=timeout, handler=handler
        )
    except (OSError, ValueError) as error:
        log.warning("could not push metrics to %s: %s", url, error)
