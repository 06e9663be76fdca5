"""Run metrics: the textfile and the Pushgateway get what a run did, and `--check` writes none."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from sync_job.status.reconcile import status_due as _status_due
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


def sample(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def test_textfile_has_the_run_and_keeps_last_success_across_a_failure(
    router: Router, example: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "router_policy_sync.prom"
    assert sync(router, example, "--metrics-file", str(metrics)) == 0
    text = metrics.read_text()
    assert 'router_policy_sync_policies{reason="Synced"} 1' in text
    assert 'router_policy_sync_router_changes{action="create"} 8' in text
    assert 'router_policy_sync_router_requests{method="PUT"} 8' in text
    assert sample(text, "router_policy_sync_run_success") == 1
    succeeded = sample(text, "router_policy_sync_last_success_timestamp_seconds")

    with httpx.Client(base_url=router.url, auth=("admin", PASSWORD)) as rest:
        rest.delete(f"/{FILTER}/{router.marker_id}").raise_for_status()
    assert sync(router, example, "--metrics-file", str(metrics)) == 1
    text = metrics.read_text()
    assert sample(text, "router_policy_sync_run_success") == 0
    assert sample(text, "router_policy_sync_last_success_timestamp_seconds") == succeeded
    assert 'router_policy_sync_policies{reason="SyncFailed"} 1' in text

    metrics.unlink()
    assert sync(router, example, "--check", "--metrics-file", str(metrics)) == 1
    assert not metrics.exists()  # --check writes nothing anywhere


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.command, self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_pushgateway_gets_a_post_for_the_job(
    router: Router, example: Path, pushgateway: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    url, received = pushgateway
    assert sync(router, example, "--pushgateway-url", url) == 0
    assert [(method, path) for method, path, _ in received] == [
        ("POST", "/metrics/job/router-policy-sync")
    ]
    assert b"router_policy_sync_run_success 1" in received[0][2]


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
