"""Small helpers the e2e tests share: raw API calls as admin, and the objects a scenario needs.

Everything goes through `kubernetes.client.ApiClient.call_api` with plain dicts, so a test says
exactly what it sends (the same way the job itself talks to the API server).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"
RP = "/apis/router-policy-sync.homelab-helper.benfiola.com/v1/routerpolicies"
CCNP = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"

_COLLECTIONS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}


def call(
    api: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: Mapping[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    verb, url, headers, payload, _ = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=list((query or {}).items()),
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(verb, url, header_params=headers, body=payload)
    data = response.read()
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=data.decode(errors="replace"))
    return json.loads(data) if data else None


def status_of(error: ApiException) -> int:
    return int(error.status or 0)


def get_or_none(api: ApiClient, path: str) -> Any:
    try:
        return call(api, "GET", path)
    except ApiException as error:
        if status_of(error) == 404:
            return None
        raise


def delete_quietly(api: ApiClient, path: str) -> None:
    try:
        call(api, "DELETE", path)
    except ApiException as error:
        if status_of(error) != 404:
            raise


def object_path(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    collection = _COLLECTIONS[obj["kind"]].format(ns=meta.get("namespace", ""))
    return f"{collection}/{meta['name']}"


def apply(api: ApiClient, obj: Mapping[str, Any], *, dry_run: bool = False) -> Any:
    """Server-side apply, so it works whether or not the object exists."""
    query = {"fieldManager": "e2e-tests", "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    return call(
        api,
        "PATCH",
        object_path(obj),
        json.dumps(dict(obj)),
        query=query,
        content_type="application/apply-patch+yaml",
    )


def manifest_objects(directory: Path) -> list[dict[str, Any]]:
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and "metadata" in document:
                objects.append(document)
    return objects


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(api: ApiClient, name: str) -> None:
    if get_or_none(api, f"/api/v1/namespaces/{name}") is None:
        call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})


def create_pod(api: ApiClient, namespace: str, name: str, labels: Mapping[str, str]) -> None:
    call(
        api,
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
        },
    )
    # No kubelet runs here, so the pod stays Pending unless its status says what one would.
    call(
        api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{name}/status",
        {"status": {"phase": "Running"}},
        content_type="application/merge-patch+json",
    )


def create_lb_service(
    api: ApiClient,
    namespace: str,
    name: str,
    selector: Mapping[str, str],
    ports: Iterable[tuple[str, int]],
    ip: str | None,
) -> None:
    call(
        api,
        "POST",
        f"/api/v1/namespaces/{namespace}/services",
        {
            "metadata": {"name": name},
            "spec": {
                "type": "LoadBalancer",
                "selector": dict(selector),
                "ports": [
                    {"name": f"{proto.lower()}-{port}", "protocol": proto, "port": port}
                    for proto, port in ports
                ],
            },
        },
    )
    if ip is not None:
        set_lb_ip(api, namespace, name, ip)


def set_lb_ip(api: ApiClient, namespace: str, name: str, ip: str) -> None:
    call(
        api,
        "PATCH",
        f"/api/v1/namespaces/{namespace}/services/{name}/status",
        {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
        content_type="application/merge-patch+json",
    )


def create_ccnp(
    api: ApiClient,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    sources: Iterable[str],
    *,
    annotated: bool = True,
) -> dict[str, Any]:
    annotations = {ANNOTATION: "true"} if annotated else {}
    created: dict[str, Any] = call(
        api,
        "POST",
        CCNP,
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "endpointSelector": {
                    "matchLabels": {**labels, "k8s:io.kubernetes.pod.namespace": namespace}
                },
                "ingress": [{"fromCIDR": list(sources)}],
            },
        },
    )
    return created


@contextmanager
def policy_with_gateway(
    api: ApiClient, prefix: str, ip: str, ports: Iterable[tuple[str, int]], sources: Iterable[str]
) -> Iterator[str]:
    """An annotated policy selecting one pod behind a LoadBalancer Service; removed afterwards."""
    namespace, name = unique(prefix), unique(f"{prefix}-web")
    create_namespace(api, namespace)
    create_pod(api, namespace, "web-0", {"app": "web"})
    create_lb_service(api, namespace, "web", {"app": "web"}, ports, ip)
    create_ccnp(api, name, namespace, {"app": "web"}, sources)
    try:
        yield name
    finally:
        delete_quietly(api, f"{CCNP}/{name}")
        delete_quietly(api, f"{RP}/{name}")
