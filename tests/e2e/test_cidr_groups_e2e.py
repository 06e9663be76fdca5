"""End-to-end: a policy taking its sources from a real CiliumCIDRGroup (the CRD as Cilium ships it,
tests/fixtures/cilium/crds/ciliumcidrgroups.yaml) converges the router, follows edits of the group
in place, and keeps its router objects untouched when the group is deleted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from controlplane.plane import ControlPlane
from k8s import CCNP, RP, call, delete_quietly, policy_with_gateway, unique
from kubernetes.client import ApiClient

from tests.support.router import ADDRESS_LIST, FILTER, NAT, Router, run_cli

CIDR_GROUPS = "/apis/cilium.io/v2/ciliumcidrgroups"
MERGE = "application/merge-patch+json"


def sync(plane: ControlPlane, router: Router) -> int:
    return run_cli(
        "sync",
        "--kubeconfig",
        str(plane.admin_kubeconfig),
        "--mikrotik-base-url",
        router.url,
        "--lease-wait",
        "0",
    ).code


def condition(api: ApiClient, policy: str) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = call(api, "GET", f"{RP}/{policy}")["status"]["conditions"]
    return conditions[0]


def owned(router: Router) -> dict[str, list[dict[str, str]]]:
    return {table: router.owned(table) for table in (ADDRESS_LIST, FILTER, NAT)}


@pytest.fixture
def grouped(api_client: ApiClient) -> Iterator[tuple[str, str]]:
    """(policy, group): a policy whose only sources come from a CiliumCIDRGroup by name."""
    group = unique("office")
    call(
        api_client,
        "POST",
        CIDR_GROUPS,
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumCIDRGroup",
            "metadata": {"name": group},
            "spec": {"externalCIDRs": ["203.0.113.60/32", "203.0.113.61/32"]},
        },
    )
    with policy_with_gateway(api_client, "groups", "10.0.0.60", [("TCP", 443)], []) as policy:
        call(
            api_client,
            "PATCH",
            f"{CCNP}/{policy}",
            {"spec": {"ingress": [{"fromCIDRSet": [{"cidrGroupRef": group}]}]}},
            content_type=MERGE,
        )
        try:
            yield policy, group
        finally:
            delete_quietly(api_client, f"{CIDR_GROUPS}/{group}")


def test_a_group_converges_follows_edits_in_place_and_its_loss_freezes_the_router(
    api_client: ApiClient, control_plane: ControlPlane, router: Router, grouped: tuple[str, str]
) -> None:
    policy, group = grouped
    assert sync(control_plane, router) == 0
    synced = condition(api_client, policy)
    assert synced["reason"] == "Synced", synced
    assert f"sources from CiliumCIDRGroup {group}" in synced["message"]
    entries = router.owned(ADDRESS_LIST)
    assert sorted(r["address"] for r in entries) == ["203.0.113.60", "203.0.113.61"]
    kept_id = next(r[".id"] for r in entries if r["address"] == "203.0.113.60")

    # Editing the group changes the list in place: the kept entry keeps its id.
    call(
        api_client,
        "PATCH",
        f"{CIDR_GROUPS}/{group}",
        {"spec": {"externalCIDRs": ["203.0.113.60/32", "203.0.113.62/32"]}},
        content_type=MERGE,
    )
    assert sync(control_plane, router) == 0
    entries = router.owned(ADDRESS_LIST)
    assert sorted(r["address"] for r in entries) == ["203.0.113.60", "203.0.113.62"]
    assert next(r[".id"] for r in entries if r["address"] == "203.0.113.60") == kept_id

    # Deleting the group fails the policy, naming the group, and leaves the router exactly so.
    before = owned(router)
    writes = router.writes()
    call(api_client, "DELETE", f"{CIDR_GROUPS}/{group}")
    assert sync(control_plane, router) == 1  # a policy that is not Synced

    failed = condition(api_client, policy)
    assert failed["reason"] == "ValidationFailed", failed
    assert f'cidrGroupRef "{group}" names no CiliumCIDRGroup' in failed["message"]
    assert owned(router) == before
    assert router.writes() == writes
