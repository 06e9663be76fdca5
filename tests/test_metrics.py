"""Run metrics: the textfile and the Pushgateway get what a run did, and `--check` writes none.

Everything written is read back with prometheus-client's own text parser, so a malformed
exposition fails here whatever its bytes look like.
"""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync_job.metrics import METRIC_NAMES
from sync_job.status.reconcile import status_due as _status_due
from sync_job.testing.emulator import WRITE_METHODS
from sync_job.testing.faults import Faults
from tests.support.router import FILTER, PASSWORD, Router, run_cli

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def sync(router: Router, example: Path, *extra: str) -> int:
    return run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url, *extra
    ).code


def parsed(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> labels -> value, read back with prometheus-client's own parser."""
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family
        for sample in family.samples:
            families.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = (
                sample.value
            )
    return families


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    return float(families[f"router_policy_sync_{name}"][tuple(sorted(labels.items()))])


def test_textfile_has_the_run_and_keeps_last_success_across_a_failure(
    router: Router, example: Path, tmp_path: Path
) -> None:
    (tmp_path / "textfiles").mkdir()
    metrics = tmp_path / "textfiles" / "router_policy_sync.prom"
    before = time.time()
    assert sync(router, example, "--metrics-file", str(metrics)) == 0
    after = time.time()
    first = parsed(metrics.read_text())
    assert value(first, "policies", reason="Synced") == 1
    assert value(first, "policies", reason="SyncFailed") == 0
    assert value(first, "router_changes", action="create") == 8
    assert value(first, "router_changes", action="delete") == 0
    assert value(first, "router_changes_failed", action="create") == 0
    assert value(first, "router_requests", method="PUT") == 8
    assert value(first, "router_objects_not_kept") == 0
    assert value(first, "run_success") == 1
    assert value(first, "run_duration_seconds") > 0
    succeeded = value(first, "last_success_timestamp_seconds")
    # full precision: the run's own time, not rounded to 6 significant digits (±5000 s)
    assert before <= succeeded <= after
    assert succeeded == value(first, "last_run_timestamp_seconds")
    assert list(metrics.parent.iterdir()) == [metrics]  # the temporary file was renamed over it

    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as rest:
        rest.delete(f"/{FILTER}/{router.marker_id}").raise_for_status()
    assert sync(router, example, "--metrics-file", str(metrics)) == 1
    failed = parsed(metrics.read_text())
    assert value(failed, "run_success") == 0
    assert value(failed, "last_success_timestamp_seconds") == succeeded
    assert value(failed, "last_run_timestamp_seconds") >= succeeded
    assert value(failed, "policies", reason="SyncFailed") == 1

    metrics.unlink()
    assert sync(router, example, "--check", "--metrics-file", str(metrics)) == 1
    assert not metrics.exists()  # --check writes nothing anywhere


def test_an_unreadable_textfile_starts_without_a_last_success(
    router: Router, example: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "router_policy_sync.prom"
    metrics.write_text("router_policy_sync_last_success_timestamp_seconds{ 12\n")
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as rest:
        rest.delete(f"/{FILTER}/{router.marker_id}").raise_for_status()
    assert sync(router, example, "--metrics-file", str(metrics)) == 1
    families = parsed(metrics.read_text())
    assert "router_policy_sync_last_success_timestamp_seconds" not in families
    assert value(families, "run_success") == 0


def test_router_changes_that_failed_are_counted_by_action(
    router: Router, example: Path, tmp_path: Path
) -> None:
    Faults(router.emulator).fail_nth(3, 400, "failure: simulated", methods=WRITE_METHODS)
    metrics = tmp_path / "router_policy_sync.prom"
    assert sync(router, example, "--metrics-file", str(metrics)) == 1
    families = parsed(metrics.read_text())
    assert value(families, "router_changes_failed", action="create") == 1
    assert value(families, "router_changes_failed", action="update") == 0
    assert value(families, "router_changes", action="create") >= 2


def test_a_writing_run_exports_every_gauge_of_the_table(
    router: Router, example: Path, tmp_path: Path
) -> None:
    """`METRIC_NAMES` (what the dashboard and alert tests check against) is what a run writes."""
    metrics = tmp_path / "router_policy_sync.prom"
    assert sync(router, example, "--metrics-file", str(metrics)) == 0
    assert set(parsed(metrics.read_text())) == METRIC_NAMES


Received = list[tuple[str, str, dict[str, str], bytes]]


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, Received]]:
    """A Pushgateway stand-in on 127.0.0.1 that records every request and answers 200."""
    received: Received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.command, self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

        do_PUT = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_pushgateway_gets_a_push_add_for_the_job_and_its_namespace(
    router: Router, example: Path, pushgateway: tuple[str, Received]
) -> None:
    url, received = pushgateway
    assert sync(router, example, "--pushgateway-url", url, "--lease-namespace", "team-a") == 0
    assert [(method, path) for method, path, _, _ in received] == [
        ("POST", "/metrics/job/router-policy-sync/namespace/team-a")
    ]
    headers, body = received[0][2], received[0][3]
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Authorization" not in headers
    families = parsed(body.decode())
    assert set(families) == METRIC_NAMES
    assert value(families, "run_success") == 1
    assert value(families, "policies", reason="Synced") == 1
    assert value(families, "router_requests", method="PUT") == 8


def test_a_failed_run_pushes_no_last_success_so_the_gateway_keeps_it(
    router: Router, example: Path, pushgateway: tuple[str, Received]
) -> None:
    """A POST replaces only the families sent: the previous success survives on the gateway."""
    url, received = pushgateway
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as rest:
        rest.delete(f"/{FILTER}/{router.marker_id}").raise_for_status()
    assert sync(router, example, "--pushgateway-url", url) == 1
    ((method, path, _, body),) = received
    assert (method, path) == (
        "POST",
        "/metrics/job/router-policy-sync/namespace/router-policy-sync",
    )
    families = parsed(body.decode())
    assert "router_policy_sync_last_success_timestamp_seconds" not in families
    assert value(families, "run_success") == 0


def test_credentials_in_the_pushgateway_url_become_basic_auth(
    router: Router, example: Path, pushgateway: tuple[str, Received]
) -> None:
    url, received = pushgateway
    with_user = url.replace("http://", "http://metrics:p%40ss-7d2e@")
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--pushgateway-url", with_user,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    ((_, path, headers, _),) = received
    assert path == "/metrics/job/router-policy-sync/namespace/router-policy-sync"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"metrics:p@ss-7d2e").decode()
    assert "p%40ss-7d2e" not in result.stderr + result.stdout


def test_a_missing_marker_with_no_policies_is_a_failure(router: Router, tmp_path: Path) -> None:
    """Orphans cannot be removed without a marker: never report that as success."""
    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as rest:
        rest.put(
            f"/{FILTER}",
            json={
                "chain": "forward",
                "action": "accept",
                "comment": "router-policy-sync::gone::tcp",
            },
        ).raise_for_status()
        rest.delete(f"/{FILTER}/{router.marker_id}").raise_for_status()
    empty = tmp_path / "empty.yaml"
    empty.write_text("kind: List\nitems: []\n")
    assert sync(router, empty) == 1


@pytest.mark.parametrize("stored", ["2020-01-01T00:00:00", "2020-01-01T00:00:00Z", "garbage"])
def test_an_old_or_unreadable_reconcile_time_is_due_whatever_its_form(stored: str) -> None:
    status = {"lastReconciledTime": "x", "observedGeneration": 1}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert _status_due(
        "p", status, {**status, "lastReconciledTime": stored}, now, timedelta(hours=1)
    )
    fresh = {**status, "lastReconciledTime": "2025-12-31T23:59:00Z"}
    assert not _status_due("p", status, fresh, now, timedelta(hours=1))
