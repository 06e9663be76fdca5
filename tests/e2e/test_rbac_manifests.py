"""The manifests' own identity: the ServiceAccount's token alone runs the job, every RBAC rule is
needed (a role lacking any one makes a run fail), and every manifest passes server-side dry-run."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controlplane.plane import ControlPlane, api_client_for, kubeconfig_for_token
from k8s import (
    CCNP,
    RP,
    apply,
    call,
    delete_quietly,
    get_or_none,
    manifest_objects,
    policy_with_gateway,
    unique,
)
from kubernetes.client import ApiClient

from tests.support.router import ADDRESS_LIST, REPO, Router, run_cli

MANIFESTS = REPO / "manifests" / "base"
JOB_NS = "router-policy-sync"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{JOB_NS}/leases"
CIDR_GROUPS = "/apis/cilium.io/v2/ciliumcidrgroups"


def test_every_manifest_passes_server_side_dry_run(api_client: ApiClient) -> None:
    objects = manifest_objects(MANIFESTS)
    assert {o["kind"] for o in objects} == {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "CronJob",
    }
    for obj in objects:
        echoed = apply(api_client, obj, dry_run=True)
        assert echoed["metadata"]["name"] == obj["metadata"]["name"]
    assert (
        get_or_none(api_client, f"/apis/batch/v1/namespaces/{JOB_NS}/cronjobs/router-policy-sync")
        is None
    )


@pytest.fixture(scope="module")
def job_identity(
    api_client: ApiClient, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ApiClient]]:
    """The manifests' ServiceAccount and RBAC, applied for real, and a token-only kubeconfig."""
    for obj in manifest_objects(MANIFESTS):
        if obj["kind"] not in ("CronJob", "CustomResourceDefinition", "Namespace"):
            apply(api_client, obj)
    token = call(
        api_client,
        "POST",
        f"/api/v1/namespaces/{JOB_NS}/serviceaccounts/router-policy-sync/token",
        {"spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    kubeconfig = kubeconfig_for_token(
        control_plane, token, tmp_path_factory.mktemp("sa") / "kubeconfig"
    )
    with api_client_for(kubeconfig) as job_api:
        yield kubeconfig, job_api


def sync(kubeconfig: Path, router: Router, *extra: str) -> int:
    result = run_cli(
        "sync",
        "--kubeconfig",
        str(kubeconfig),
        "--mikrotik-base-url",
        router.url,
        "--lease-wait",
        "0",
        *extra,
    )
    return result.code


@pytest.fixture
def policy(api_client: ApiClient) -> Iterator[str]:
    with policy_with_gateway(
        api_client, "rbac", "10.0.0.40", [("TCP", 443)], ["203.0.113.40/32"]
    ) as name:
        yield name
    delete_quietly(api_client, f"{CIDR_GROUPS}/{name}-group")  # made by _prepare


def test_service_account_token_alone_runs_the_whole_scenario(
    api_client: ApiClient, job_identity: tuple[Path, ApiClient], router: Router, policy: str
) -> None:
    kubeconfig, _ = job_identity
    assert sync(kubeconfig, router) == 0
    status = call(api_client, "GET", f"{RP}/{policy}")["status"]
    assert status["conditions"][0]["reason"] == "Synced"
    assert sync(kubeconfig, router, "--check") == 0
    call(
        api_client,
        "PATCH",
        f"{CCNP}/{policy}",
        {"spec": {"ingress": [{"fromCIDR": ["203.0.113.41/32"]}]}},
        content_type="application/merge-patch+json",
    )
    assert sync(kubeconfig, router, "--check") == 2
    assert sync(kubeconfig, router) == 0
    assert [r["address"] for r in router.owned(ADDRESS_LIST)] == ["203.0.113.41"]
    call(
        api_client,
        "PATCH",
        f"{CCNP}/{policy}",
        {"metadata": {"annotations": None}},
        content_type="application/merge-patch+json",
    )
    assert sync(kubeconfig, router) == 0
    assert get_or_none(api_client, f"{RP}/{policy}") is None
    assert router.owned(ADDRESS_LIST) == []


def _allowed(job_api: ApiClient, rule: dict[str, Any], namespace: str | None) -> bool:
    attributes = {"group": rule["apiGroups"][0], "verb": rule["verbs"][0]}
    resource, _, subresource = rule["resources"][0].partition("/")
    attributes |= {"resource": resource, "subresource": subresource}
    if namespace:
        attributes["namespace"] = namespace
    if rule.get("resourceNames"):
        attributes["name"] = rule["resourceNames"][0]
    review = call(
        job_api,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"spec": {"resourceAttributes": attributes}},
    )
    return bool(review["status"].get("allowed"))


def _wait_until(
    job_api: ApiClient, rule: dict[str, Any], namespace: str | None, want: bool
) -> None:
    """RBAC changes reach the authorizer through a cache; wait for this rule to (dis)appear."""
    deadline = time.monotonic() + 30
    while _allowed(job_api, rule, namespace) is not want:
        assert time.monotonic() < deadline, f"RBAC never became allowed={want} for {rule}"
        time.sleep(0.05)


def _prepare(api_client: ApiClient, policy: str, expired_lease: bool) -> None:
    """A state in which one run needs every permission: a RouterPolicy to create, a stale one
    to delete, a status and an Event to write, a Lease to read and to create or take over, and
    a CiliumCIDRGroup the policy takes a source from."""
    delete_quietly(api_client, f"{RP}/{policy}")
    group = f"{policy}-group"
    if get_or_none(api_client, f"{CIDR_GROUPS}/{group}") is None:
        call(
            api_client,
            "POST",
            CIDR_GROUPS,
            {
                "apiVersion": "cilium.io/v2",
                "kind": "CiliumCIDRGroup",
                "metadata": {"name": group},
                "spec": {"externalCIDRs": ["203.0.113.42/32"]},
            },
        )
    call(
        api_client,
        "PATCH",
        f"{CCNP}/{policy}",
        {
            "spec": {
                "ingress": [
                    {"fromCIDR": ["203.0.113.40/32"], "fromCIDRSet": [{"cidrGroupRef": group}]}
                ]
            }
        },
        content_type="application/merge-patch+json",
    )
    stale = unique("stale")
    call(
        api_client,
        "POST",
        RP,
        {
            "apiVersion": RP.split("/apis/")[1].rsplit("/", 1)[0],
            "kind": "RouterPolicy",
            "metadata": {"name": stale},
            "spec": {},
        },
    )
    delete_quietly(api_client, f"{LEASES}/router-policy-sync")
    if expired_lease:
        call(
            api_client,
            "POST",
            LEASES,
            {
                "metadata": {"name": "router-policy-sync"},
                "spec": {
                    "holderIdentity": "crashed-run",
                    "leaseDurationSeconds": 10,
                    "acquireTime": "2020-01-01T00:00:00.000000Z",
                    "renewTime": "2020-01-01T00:00:00.000000Z",
                },
            },
        )


def _rules() -> list[tuple[str, int]]:
    """(role name, rule index) of every rule of every ClusterRole and Role in the manifests."""
    return [
        (o["metadata"]["name"], index)
        for o in manifest_objects(MANIFESTS)
        if o["kind"] in ("ClusterRole", "Role")
        for index in range(len(o["rules"]))
    ]


@pytest.mark.parametrize(("role_name", "index"), _rules(), ids=lambda v: str(v))
def test_every_rbac_rule_is_needed(
    api_client: ApiClient,
    job_identity: tuple[Path, ApiClient],
    router: Router,
    policy: str,
    role_name: str,
    index: int,
) -> None:
    kubeconfig, job_api = job_identity
    role = next(
        o
        for o in manifest_objects(MANIFESTS)
        if o["kind"] in ("ClusterRole", "Role") and o["metadata"]["name"] == role_name
    )
    rule = role["rules"][index]
    namespace = role["metadata"].get("namespace") if role["kind"] == "Role" else None
    lease_update = rule["resources"] == ["leases"] and rule["verbs"] == ["update"]

    _prepare(api_client, policy, expired_lease=lease_update)
    assert sync(kubeconfig, router) == 0, "the full role must be enough"

    lacking = copy.deepcopy(role)
    del lacking["rules"][index]
    apply(api_client, lacking)
    try:
        _wait_until(job_api, rule, namespace, want=False)
        _prepare(api_client, policy, expired_lease=lease_update)
        assert sync(kubeconfig, router) == 1, f"a run without {rule} must fail"
    finally:
        apply(api_client, role)
        _wait_until(job_api, rule, namespace, want=True)
