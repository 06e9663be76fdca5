"""After writing, the job trusts the router, not the plan (README "Safety", issue 13).

`run_once` in process against the emulator, with quirks a real router can show: a PATCH that is
accepted but not kept, and a move that lands at the end of the table (what RouterOS does when
the destination vanished). Request counts are counted by the emulator.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync_job.metrics import exposition
from sync_job.render import to_json, to_text
from sync_job.report import RunReport
from sync_job.router.client import RouterSettings, RouterWriter, make_http_client
from sync_job.router.system import RouterTooOld
from sync_job.run import SyncSettings, run_once
from sync_job.source.snapshot import ANNOTATION, ClusterSnapshot, pod_from_raw, service_from_raw
from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import FILTER, NAT, PASSWORD, seed_router

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SETTINGS = RouterSettings("https://router.test.invalid/rest", "admin", PASSWORD)


def cluster(ip: str = "198.51.100.10", sources: tuple[str, ...] = ("203.0.113.1",)) -> Any:
    policy = {
        "metadata": {"name": "web", "annotations": {ANNOTATION: "true"}},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": "web", "k8s:io.kubernetes.pod.namespace": "apps"}},  # noqa: E501
            "ingress": [{"fromCIDR": [f"{s}/32" for s in sources]}],
        },
    }  # fmt: skip
    pod = pod_from_raw(
        {"metadata": {"name": "w", "namespace": "apps", "labels": {"app": "web"}},
         "status": {"phase": "Running"}}
    )  # fmt: skip
    service = service_from_raw(
        {"metadata": {"name": "web", "namespace": "apps"},
         "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                  "ports": [{"port": 443}, {"port": 53, "protocol": "UDP"}]},
         "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
    )  # fmt: skip
    return ClusterSnapshot([policy], [pod], [service])


def gauge(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one family, read back with prometheus-client's parser."""
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == name)
    return [(sample.labels, sample.value) for sample in family.samples]


def run(emulator: RouterOSEmulator, snapshot: ClusterSnapshot) -> RunReport:
    with make_http_client(SETTINGS, transport=emulator.transport()) as http:
        return run_once(
            read_cluster=lambda: snapshot,
            router=RouterWriter(http, SETTINGS),
            kube=None,
            settings=SyncSettings(),
            check=False,
            now=lambda: NOW,
        )


def requests(emulator: RouterOSEmulator) -> Counter[str]:
    """Requests by method and table, e.g. "GET ip/firewall/nat"."""
    counts: Counter[str] = Counter()
    for (method, path), n in emulator.requests.items():
        parts = path.strip("/").split("/")
        table = "/".join(parts[1:4] if parts[0] == "rest" else parts[:3])
        counts[f"{method} {table}"] += n
    return counts


class KeepsOldNatAddress(RouterOSEmulator):
    """A router that answers a PATCH of `to-addresses` with 200 but keeps the old value."""

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, auth: str | None
    ) -> tuple[int, bytes]:
        if method.upper() == "PATCH" and f"/{NAT}/" in path and b"to-addresses" in body:
            fields = {k: v for k, v in json.loads(body).items() if k != "to-addresses"}
            if fields:
                return super().handle(method, path, query, json.dumps(fields).encode(), auth)
            row = next(r for r in self.rows(NAT) if r[".id"] == path.rsplit("/", 1)[1])
            self.requests[(method.upper(), f"/rest/{NAT}/*")] += 1
            return 200, json.dumps(row).encode()
        return super().handle(method, path, query, body, auth)


def test_a_patch_the_router_does_not_keep_fails_the_policy_every_run_without_looping() -> None:
    emulator = KeepsOldNatAddress("admin", PASSWORD)
    seed_router(emulator)
    assert not run(emulator, cluster()).failed
    for _ in range(2):  # the next run behaves the same: one attempt per run, never a loop
        emulator.reset_counts()
        report = run(emulator, cluster(ip="198.51.100.20"))
        assert report.failed
        (outcome,) = report.outcomes
        assert outcome.reason.value == "SyncFailed"
        assert (
            "router kept to-addresses=198.51.100.10 after setting to-addresses=198.51.100.20"
            in (outcome.message)
        )
        assert requests(emulator)[f"PATCH {NAT}"] == 2  # one PATCH per NAT rule (tcp 443, udp 53)
        assert len(report.not_kept) == 2


def test_a_run_that_wrote_nothing_reads_nothing_extra_and_one_that_wrote_reads_back() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    first = run(emulator, cluster())
    assert not first.failed and not first.not_kept
    # first run: 3 reads, /system/resource, 5 creates (1 entry, 2 filter rules, 2 NAT rules),
    # 3 read-backs
    assert sum(n for k, n in requests(emulator).items() if k.startswith("GET")) == 7
    emulator.reset_counts()
    assert not run(emulator, cluster()).plan
    assert requests(emulator) == Counter(
        {f"GET {FILTER}": 1, f"GET {NAT}": 1, "GET ip/firewall/address-list": 1}
    )
    emulator.reset_counts()
    changed = run(emulator, cluster(sources=("203.0.113.1", "203.0.113.2")))
    assert not changed.failed
    assert requests(emulator) == Counter(
        {f"GET {FILTER}": 1, f"GET {NAT}": 1, "GET ip/firewall/address-list": 2,
         "GET system/resource": 1, "PUT ip/firewall/address-list": 1}
    )  # fmt: skip


class MovesToTheEnd(RouterOSEmulator):
    """A router where every `move` lands at the end of the table, as RouterOS does when the
    destination is gone by the time the move arrives."""

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, auth: str | None
    ) -> tuple[int, bytes]:
        if method.upper() == "POST" and path.endswith(f"{FILTER}/move"):
            with self.locked():
                ids = json.loads(body)["numbers"].split(",")
                end = [r for r in self.rows(FILTER) if r[".id"] not in ids]
                self.requests[("POST", f"/rest/{FILTER}/move")] += 1
                moved = [r for r in self.rows(FILTER) if r[".id"] in ids]
                self.restore({**self.snapshot(), FILTER: [*end, *moved]})
            return 200, b"[]"
        return super().handle(method, path, query, body, auth)


def test_an_accept_rule_left_out_of_place_is_deleted_and_reported() -> None:
    emulator = MovesToTheEnd("admin", PASSWORD)
    seed_router(emulator)
    assert not run(emulator, cluster()).failed
    rows = emulator.rows(FILTER)
    owned = [r for r in rows if r.get("comment", "") == "router-policy-sync::web::tcp"]
    # someone drags the tcp rule to the very top of the table, above the user's rules
    others = [r for r in rows if r not in owned]
    emulator.restore({**emulator.snapshot(), FILTER: [*owned, *others]})
    report = run(emulator, cluster())
    (outcome,) = report.outcomes
    assert outcome.reason.value == "SyncFailed"
    assert "filter router-policy-sync::web::tcp: not directly above the marker" in outcome.message
    comments = [r.get("comment", "") for r in emulator.rows(FILTER)]
    assert "router-policy-sync::web::tcp" not in comments  # no accept rule out of place
    healed = run(emulator, cluster())  # the next run creates it again, in place
    assert not healed.failed
    comments = [r.get("comment", "") for r in emulator.rows(FILTER)]
    at = comments.index("router-policy-sync::marker")
    assert comments[at - 2 : at] == ["router-policy-sync::web::tcp", "router-policy-sync::web::udp"]


def test_a_router_older_than_7_1_is_refused_before_any_write() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    emulator.system_resource = {"version": "6.49.10 (long-term)", "board-name": "RB4011"}
    with pytest.raises(RouterTooOld, match=r"RouterOS '6.49.10 \(long-term\)'.*7.1 or later"):
        run(emulator, cluster())
    assert {method for method, _ in emulator.requests} == {"GET"}


def test_the_router_version_is_read_once_on_a_writing_run_and_shown() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    seed_router(emulator)
    report = run(emulator, cluster())
    assert report.router_system == {"version": "7.23.7 (long-term)", "board-name": "CHR"}
    assert requests(emulator)["GET system/resource"] == 1
    assert json.loads(to_json(report, check=False))["router"]["system"]["board-name"] == "CHR"
    text = exposition(
        report, success=True, finished=1.0, duration=1.0, router_requests={}, last_success=None
    )
    info = gauge(text, "router_policy_sync_router_info")
    assert info == [({"board": "CHR", "version": "7.23.7 (long-term)"}, 1.0)]
    assert gauge(text, "router_policy_sync_router_objects_not_kept") == [({}, 0.0)]
    emulator.reset_counts()
    noop = run(emulator, cluster())
    assert noop.router_system is None and requests(emulator)["GET system/resource"] == 0


def test_objects_not_kept_are_counted_in_the_metrics() -> None:
    emulator = KeepsOldNatAddress("admin", PASSWORD)
    seed_router(emulator)
    run(emulator, cluster())
    report = run(emulator, cluster(ip="198.51.100.20"))
    text = exposition(
        report, success=False, finished=1.0, duration=1.0, router_requests={}, last_success=None
    )
    assert gauge(text, "router_policy_sync_router_objects_not_kept") == [({}, 2.0)]
    assert "Not kept by the router" in to_text(report, check=False)
