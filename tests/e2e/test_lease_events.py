"""The Lease that serialises writing runs, and the Events a run records on RouterPolicy objects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from controlplane.plane import ControlPlane
from k8s import (
    CCNP,
    RP,
    call,
    delete_quietly,
    get_or_none,
    policy_with_gateway,
)
from kubernetes.client import ApiClient

from tests.support.router import Router, run_cli

LEASE = "/apis/coordination.k8s.io/v1/namespaces/router-policy-sync/leases/router-policy-sync"


def sync(plane: ControlPlane, router: Router, *extra: str) -> tuple[int, str, str]:
    result = run_cli(
        "sync",
        "--kubeconfig",
        str(plane.admin_kubeconfig),
        "--mikrotik-base-url",
        router.url,
        *extra,
    )
    return result.code, result.stdout, result.stderr


def hold_lease(api: ApiClient, holder: str, renewed: datetime, duration: int = 300) -> None:
    delete_quietly(api, LEASE)
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    call(
        api,
        "POST",
        LEASE.rsplit("/", 1)[0],
        {
            "metadata": {"name": "router-policy-sync"},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": stamp,
                "renewTime": stamp,
            },
        },
    )


@pytest.fixture
def policy(api_client: ApiClient) -> Iterator[str]:
    with policy_with_gateway(
        api_client, "lease", "10.0.0.50", [("TCP", 80)], ["203.0.113.50/32"]
    ) as name:
        yield name


def test_a_live_holder_makes_a_run_wait_then_exit_1_without_writing(
    api_client: ApiClient, control_plane: ControlPlane, router: Router, policy: str
) -> None:
    hold_lease(api_client, "manual-1-abcde", datetime.now(UTC))
    code, _, err = sync(control_plane, router, "--lease-wait", "1")
    assert code == 1
    assert "another run holds Lease router-policy-sync/router-policy-sync" in err
    assert "manual-1-abcde" in err
    assert router.writes() == 0 and get_or_none(api_client, f"{RP}/{policy}") is None
    assert call(api_client, "GET", LEASE)["spec"]["holderIdentity"] == "manual-1-abcde"


def test_check_takes_no_lock(
    api_client: ApiClient, control_plane: ControlPlane, router: Router, policy: str
) -> None:
    hold_lease(api_client, "manual-2-abcde", datetime.now(UTC))
    version = call(api_client, "GET", LEASE)["metadata"]["resourceVersion"]
    code, _, _ = sync(control_plane, router, "--check", "--lease-wait", "0")
    assert code == 2  # drift: the new policy's objects are missing; no wait for the lease
    assert call(api_client, "GET", LEASE)["metadata"]["resourceVersion"] == version


def test_an_expired_lease_is_taken_over_and_released_at_the_end(
    api_client: ApiClient, control_plane: ControlPlane, router: Router, policy: str
) -> None:
    hold_lease(api_client, "crashed-run", datetime(2020, 1, 1, tzinfo=UTC), duration=60)
    code, _, err = sync(control_plane, router, "--lease-holder", "scheduled-xyz")
    assert code == 0, err
    assert "taking over Lease router-policy-sync/router-policy-sync from crashed-run" in err
    spec = call(api_client, "GET", LEASE)["spec"]
    assert spec.get("holderIdentity") is None  # released
    assert spec["leaseTransitions"] == 1
    code, _, err = sync(control_plane, router, "--lease-wait", "0")  # free again at once
    assert code == 0, err


def events_of(api: ApiClient, name: str) -> list[tuple[str, str, str]]:
    listed = call(
        api,
        "GET",
        "/api/v1/namespaces/default/events",
        query={"fieldSelector": f"involvedObject.name={name}"},
    )
    return [
        (e["type"], e["reason"], e["message"])
        for e in listed["items"]
        if e["involvedObject"]["kind"] == "RouterPolicy"
    ]


def test_events_tell_the_story_without_repeating_themselves(
    api_client: ApiClient, control_plane: ControlPlane, router: Router, policy: str
) -> None:
    assert sync(control_plane, router)[0] == 0
    events = events_of(api_client, policy)
    assert ("Normal", "RouterUpdated", "router objects created 3") in events
    assert [e[:2] for e in events].count(("Normal", "Synced")) == 1
    rp = call(api_client, "GET", f"{RP}/{policy}")
    listed = call(
        api_client,
        "GET",
        "/api/v1/namespaces/default/events",
        query={"fieldSelector": f"involvedObject.name={policy}"},
    )["items"]
    assert {e["involvedObject"]["uid"] for e in listed} == {rp["metadata"]["uid"]}

    assert sync(control_plane, router)[0] == 0
    assert len(events_of(api_client, policy)) == len(events)  # nothing new to say

    call(
        api_client,
        "PATCH",
        f"{CCNP}/{policy}",
        {"spec": {"ingress": [{"fromCIDR": ["203.0.113.0/24"]}]}},
        content_type="application/merge-patch+json",
    )
    assert sync(control_plane, router)[0] == 1
    assert sync(control_plane, router)[0] == 1
    warnings = [e for e in events_of(api_client, policy) if e[0] == "Warning"]
    assert len(warnings) == 1 and warnings[0][1] == "ValidationFailed"
    assert "203.0.113.0/24" in warnings[0][2]


def test_an_unchanged_status_is_written_only_when_refresh_is_due(
    api_client: ApiClient, control_plane: ControlPlane, router: Router, policy: str
) -> None:
    assert sync(control_plane, router)[0] == 0
    first = call(api_client, "GET", f"{RP}/{policy}")
    assert sync(control_plane, router)[0] == 0  # nothing changed: no status write at all
    assert (
        call(api_client, "GET", f"{RP}/{policy}")["metadata"]["resourceVersion"]
        == (first["metadata"]["resourceVersion"])
    )
    call(
        api_client,
        "PATCH",
        f"{RP}/{policy}/status",
        {"status": {"lastReconciledTime": "2020-01-01T00:00:00Z"}},
        content_type="application/merge-patch+json",
    )
    assert sync(control_plane, router)[0] == 0  # older than --status-refresh: rewritten
    refreshed = call(api_client, "GET", f"{RP}/{policy}")["status"]
    assert refreshed["lastReconciledTime"] > "2020-01-01T00:00:00Z"
    assert refreshed["conditions"] == first["status"]["conditions"]
