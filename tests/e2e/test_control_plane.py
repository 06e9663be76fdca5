"""End-to-end checks of the test control plane itself (tests/controlplane/plane.py).

This file owns the proof that the session's kube-apiserver is the expected version and serves what
the sync job relies on: the RouterPolicy CRD with its status subresource, Cilium's clusterwide
policies, TokenRequest and RBAC. Each test removes the objects it creates (namespaces stay
Terminating: there is no controller-manager).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from controlplane.plane import ControlPlane, api_client_for, kubeconfig_for_token
from kubernetes import client
from kubernetes.client.exceptions import ApiException

GROUP = "router-policy-sync.homelab-helper.benfiola.com"
VERSION = "v1"
PLURAL = "routerpolicies"
CILIUM = ("cilium.io", "v2", "ciliumclusterwidenetworkpolicies")
MERGE_PATCH = "application/merge-patch+json"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _dict(value: object) -> dict[str, Any]:
    """The custom-objects API is typed as returning ``object``; it returns the JSON object."""
    assert isinstance(value, dict)
    return value


def _user(review: client.V1SelfSubjectReview) -> client.V1UserInfo:
    assert review.status is not None and review.status.user_info is not None
    return review.status.user_info


def _ready(status: str, reason: str) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": "router rules match the policy",
        "lastTransitionTime": "2026-01-02T03:04:05Z",
    }


def test_version_is_the_built_one(
    api_client: client.ApiClient, control_plane: ControlPlane
) -> None:
    info = client.VersionApi(api_client).get_code()
    assert info.git_version == "v1.36.3"
    assert (info.major, info.minor) == ("1", "36")
    assert control_plane.startup_seconds > 0


def test_admin_is_in_system_masters(api_client: client.ApiClient) -> None:
    review = client.AuthenticationV1Api(api_client).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    assert _user(review).username == "admin"
    assert "system:masters" in (_user(review).groups or [])


def test_router_policy_status_is_a_subresource(api_client: client.ApiClient) -> None:
    api = client.CustomObjectsApi(api_client)
    name = _name("policy")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RouterPolicy",
        "metadata": {"name": name},
        "spec": {},
        "status": {"gatewayIP": "203.0.113.1"},  # dropped: status is written via /status only
    }
    created = _dict(api.create_cluster_custom_object(GROUP, VERSION, PLURAL, body))
    try:
        assert "namespace" not in created["metadata"]
        assert "status" not in created

        status = {"conditions": [_ready("True", "InSync")], "gatewayIP": "192.0.2.10"}
        api.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
        )
        read = _dict(api.get_cluster_custom_object_status(GROUP, VERSION, PLURAL, name))
        assert read["status"] == status

        with pytest.raises(ApiException) as invalid:
            api.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                PLURAL,
                name,
                {"status": {"conditions": [_ready("Maybe", "InSync")]}},
                _content_type=MERGE_PATCH,
            )
        assert invalid.value.status == 422  # the CRD's enum is enforced

        api.patch_cluster_custom_object(
            GROUP,
            VERSION,
            PLURAL,
            name,
            {"metadata": {"labels": {"touched": "yes"}}, "status": {"gatewayIP": "198.51.100.7"}},
            _content_type=MERGE_PATCH,
        )
        after = _dict(api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name))
        assert after["metadata"]["labels"] == {"touched": "yes"}
        assert after["status"] == status
    finally:
        api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def test_cilium_clusterwide_policy_is_served_and_validated(api_client: client.ApiClient) -> None:
    api = client.CustomObjectsApi(api_client)
    name = _name("allow-https")
    spec: dict[str, Any] = {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromCIDR": ["0.0.0.0/0"],
                "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}],
            }
        ],
    }
    policy = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    created = _dict(api.create_cluster_custom_object(*CILIUM, policy))
    try:
        assert created["spec"] == spec
        assert _dict(api.get_cluster_custom_object(*CILIUM, name))["metadata"]["uid"]
    finally:
        api.delete_cluster_custom_object(*CILIUM, name)

    spec["ingress"][0]["toPorts"][0]["ports"][0]["protocol"] = "ICMP"
    with pytest.raises(ApiException) as invalid:
        api.create_cluster_custom_object(*CILIUM, {**policy, "metadata": {"name": _name("bad")}})
    assert invalid.value.status == 422


def test_token_request_and_rbac(
    api_client: client.ApiClient, control_plane: ControlPlane, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    namespace = _name("e2e")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="syncer"))
        core.create_namespaced_service_account(namespace, account)
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(expiration_seconds=600)
        )
        minted = core.create_namespaced_service_account_token("syncer", namespace, request)
        assert minted.status is not None and minted.status.token

        kubeconfig = kubeconfig_for_token(control_plane, minted.status.token, tmp_path / "sa.yaml")
        assert "client-key" not in kubeconfig.read_text()
        with api_client_for(kubeconfig) as sa_client:
            review = client.AuthenticationV1Api(sa_client).create_self_subject_review(
                client.V1SelfSubjectReview()
            )
            assert _user(review).username == f"system:serviceaccount:{namespace}:syncer"
            with pytest.raises(ApiException) as denied:
                client.CoreV1Api(sa_client).list_pod_for_all_namespaces()
        assert denied.value.status == 403
    finally:
        core.delete_namespaced_service_account("syncer", namespace)
        core.delete_namespace(namespace)  # stays Terminating: there is no namespace controller
