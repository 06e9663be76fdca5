"""Settings that cannot surprise: --reserved-cidr adds to the default ranges and
--no-default-reserved drops them; a marker outside `forward` is warned about in the plan (text
and JSON); --lease-duration must exceed the router deadline plus a margin; the Lease is renewed
once, after the reads and before the first router write; --from-file runs that write take the
Lease when a kubeconfig is given, and say so at info level when they cannot."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync_job import job
from sync_job.kubeapi import KubeClient
from sync_job.lease import LeaseLost
from sync_job.router.client import RouterSettings
from sync_job.router.tables import Table
from sync_job.settings import JobSettings, LockSettings
from sync_job.source.cilium import DEFAULT_RESERVED, DEFAULT_RESERVED6
from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import FILTER, PASSWORD, Router, run_cli, seed_router
from tests.unit.fake_kube_api import FakeApi, FakeTime, Sent, no_sleep
from tests.unit.test_lease import NOW, LeaseServer, lock

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def settings(**changes: Any) -> JobSettings:
    base = JobSettings(
        check=False, output="text", from_file=None, kubeconfig=None,
        router_url="http://127.0.0.1:9/rest", router_username="admin",
        router_password=PASSWORD, router_ca_file=None, router_insecure_skip_verify=False,
        router_allow_plain_http=True, router_timeout=5.0,
        comment_prefix="router-policy-sync", reserved_cidrs=(), cluster_name="default",
        wan_interface_list=None, gateway_cidrs=(), status_refresh=3600.0, log_level="info",
        log_format="text",
        lock=LockSettings(enabled=True, namespace="router-policy-sync",
                          name="router-policy-sync", holder="test-1", wait=0, duration=300),
        pushgateway_url=None, metrics_file=None,
    )  # fmt: skip
    return replace(base, **changes)


# -- reserved ranges ------------------------------------------------------------------------


def test_a_reserved_cidr_adds_to_the_default_ranges() -> None:
    reserved = job._sync_settings(settings(reserved_cidrs=("198.51.100.0/24",))).reserved
    defaults = (*DEFAULT_RESERVED, *DEFAULT_RESERVED6)
    assert set(defaults) < set(reserved)
    assert [str(n) for n in reserved if n not in defaults] == ["198.51.100.0/24"]


def test_no_default_reserved_drops_them() -> None:
    only = job._sync_settings(
        settings(reserved_cidrs=("198.51.100.0/24",), no_default_reserved=True)
    ).reserved
    assert [str(n) for n in only] == ["198.51.100.0/24"]
    assert job._sync_settings(settings(no_default_reserved=True)).reserved == ()
    assert job._sync_settings(settings()).reserved == DEFAULT_RESERVED + DEFAULT_RESERVED6
    ipv6 = job._sync_settings(settings(reserved_cidrs=("2001:db8:bad::/48",))).reserved
    assert ipaddress.IPv6Network("2001:db8:bad::/48") in ipv6


def test_the_cli_adds_reserved_ranges_and_its_env_twin_drops_the_defaults(
    router: Router, tmp_path: Path
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    added = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, "--check",
        "--reserved-cidr", "198.51.100.0/24", "--output", "json",
    )  # fmt: skip
    assert added.code == 1  # demo source 198.51.100.5 is now reserved
    [policy] = json.loads(added.stdout)["policies"]
    assert policy["reason"] == "ValidationFailed" and "198.51.100.5" in policy["message"]
    dropped = run_cli(
        "sync", "--from-file", str(path), "--mikrotik-base-url", router.url, "--check",
        env={"NO_DEFAULT_RESERVED": "1"},
    )  # fmt: skip
    assert dropped.code == 2, dropped.stderr  # accepted: only drift


# -- the marker's chain ---------------------------------------------------------------------


def move_marker_to(router: Router, chain: str) -> None:
    router.emulator.handle(
        "PATCH", f"/rest/{FILTER}/{router.marker_id}", {},
        json.dumps({"chain": chain}).encode(), _basic(),
    )  # fmt: skip


def _basic() -> str:
    import base64

    return "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def test_a_marker_outside_forward_is_warned_about_in_text_and_json(
    router: Router, example: Path
) -> None:
    move_marker_to(router, "input")
    base = ("sync", "--from-file", str(example), "--mikrotik-base-url", router.url, "--check")
    text = run_cli(*base)
    assert text.code == 2
    assert "Warning: the ipv4 marker rule" in text.stdout and "'input'" in text.stdout
    document = json.loads(run_cli(*base, "--output", "json").stdout)
    [warning] = document["warnings"]
    assert "'input'" in warning and "forward" in warning


def test_a_marker_in_forward_gives_no_warning(router: Router, example: Path) -> None:
    base = ("sync", "--from-file", str(example), "--mikrotik-base-url", router.url, "--check")
    assert "Warning" not in run_cli(*base).stdout
    assert "warnings" not in json.loads(run_cli(*base, "--output", "json").stdout)


# -- lease duration -------------------------------------------------------------------------


@pytest.mark.parametrize("duration", ["10", "120", "180"])
def test_a_lease_duration_within_the_router_deadline_is_refused(
    router: Router, example: Path, duration: str
) -> None:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--lease-duration", duration,
    )  # fmt: skip
    assert result.code == 64
    assert "--lease-duration" in result.stderr and "120" in result.stderr
    assert router.emulator.requests == {}


def test_a_lease_duration_past_deadline_and_margin_is_accepted(
    router: Router, example: Path
) -> None:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url, "--check",
        env={"LEASE_DURATION": "181"},
    )  # fmt: skip
    assert result.code == 2, result.stderr


# -- renew ----------------------------------------------------------------------------------


def test_renew_restarts_the_duration_from_now() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    held, _ = lock(server, clock)
    held.acquire()
    clock.sleep(200)
    held.renew()
    assert server.spec["renewTime"] == (NOW + timedelta(seconds=200)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )
    assert server.spec["holderIdentity"] == "scheduled-1"


def test_renew_fails_when_another_run_took_the_lease_over() -> None:
    server, clock = LeaseServer(), FakeTime(NOW)
    held, _ = lock(server, clock)
    held.acquire()
    server.put_holder("manual-2", NOW)
    with pytest.raises(LeaseLost) as caught:
        held.renew()
    assert "manual-2" in str(caught.value)
    assert server.spec["holderIdentity"] == "manual-2"


def test_the_leased_writer_renews_once_before_the_first_write_only() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    router_settings = RouterSettings("http://127.0.0.1:9/rest", "admin", PASSWORD)
    calls: list[int] = []
    http = httpx.Client(
        base_url="http://127.0.0.1:9/rest", transport=emulator.transport(),
        auth=("admin", PASSWORD),
    )  # fmt: skip
    with http:
        writer = job._LeasedWriter(http, router_settings)
        writer.before_first_write = lambda: calls.append(len(emulator.requests))
        writer.read_tables()
        assert calls == []  # reads do not renew
        entry = {"list": "router-policy-sync::x", "address": "192.0.2.1"}
        writer.create(Table.ADDRESS_LIST, entry)
        writer.create(Table.ADDRESS_LIST, {**entry, "address": "192.0.2.2"})
    assert calls == [3]  # once, after the three GETs, before any write reached the router


def test_a_lost_lease_stops_before_the_first_write() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    router_settings = RouterSettings("http://127.0.0.1:9/rest", "admin", PASSWORD)
    http = httpx.Client(
        base_url="http://127.0.0.1:9/rest", transport=emulator.transport(),
        auth=("admin", PASSWORD),
    )  # fmt: skip

    def lost() -> None:
        raise LeaseLost("taken over")

    with http:
        writer = job._LeasedWriter(http, router_settings)
        writer.before_first_write = lost
        with pytest.raises(LeaseLost):
            writer.create(Table.ADDRESS_LIST, {"list": "l", "address": "192.0.2.1"})
    assert not [key for key in emulator.requests if key[0] != "GET"]


# -- --from-file and the Lease --------------------------------------------------------------


def test_from_file_with_a_kubeconfig_takes_and_renews_the_lease(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: the job's `_run` with a kubeconfig file and an in-memory Lease API."""
    server = LeaseServer()
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    writes_at_renew: list[int] = []

    def handle(sent: Sent) -> Any:
        if sent.method == "PUT" and sent.body["spec"].get("holderIdentity"):
            writes_at_renew.append(sum(n for (m, _), n in emulator.requests.items() if m != "GET"))
        return server.handle(sent)

    api = FakeApi(handle)
    monkeypatch.setattr(job, "api_client", lambda kubeconfig: api)
    monkeypatch.setattr(job, "KubeClient", lambda a: KubeClient(a, sleep=no_sleep))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    job_settings = settings(from_file=example, kubeconfig=str(kubeconfig))
    router_settings = RouterSettings("http://127.0.0.1:9/rest", "admin", PASSWORD)
    http = httpx.Client(
        base_url="http://127.0.0.1:9/rest", transport=emulator.transport(),
        auth=("admin", PASSWORD),
    )  # fmt: skip
    with http:
        writer = job._LeasedWriter(http, router_settings)
        code, _ = job._run(writer, job._sync_settings(job_settings), job_settings)
    assert code == 0
    assert [s.method for s in api.sent] == ["GET", "POST", "GET", "PUT", "GET", "PUT"]
    assert writes_at_renew == [0]  # the renewal came before the first router write
    assert server.spec["holderIdentity"] is None  # released at the end


def test_from_file_without_a_kubeconfig_runs_without_the_lease_and_says_so(
    router: Router, example: Path
) -> None:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        env={"KUBECONFIG": ""},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "running without the Lease" in result.stderr and "INFO" in result.stderr
