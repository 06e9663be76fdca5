"""Kubernetes I/O: one list per kind into a ClusterSnapshot, and RouterPolicy writes.

Lists go through the client's raw `call_api` and are parsed as plain JSON: the generated model
classes are never built (for thousands of pods that deserialisation costs more than the list).
Every failure becomes a SourceError (reads) or KubeWriteError (writes) naming the object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from sync_job.cluster import ClusterSnapshot, is_annotated, pod_from_raw, service_from_raw
from sync_job.errors import ConfigError, KubeWriteError, SourceError

log = logging.getLogger(__name__)

GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = f"/apis/{GROUP}/v1/routerpolicies"
CILIUM_POLICIES = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
PODS = "/api/v1/pods"
SERVICES = "/api/v1/services"
NAMESPACES = "/api/v1/namespaces"
# Finished pods can never be selected; leaving them out server-side shrinks the largest list.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


def api_client(kubeconfig: str | None) -> Any:
    """A kubernetes ApiClient from a kubeconfig file, or the in-cluster service account."""
    from kubernetes import client, config

    try:
        if kubeconfig:
            return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    except (config.ConfigException, OSError) as error:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster configuration"
        hint = "" if kubeconfig else " (outside a cluster, pass --kubeconfig or set KUBECONFIG)"
        raise ConfigError(f"cannot load {where}: {error}{hint}") from None


def _error_message(status: int, body: bytes | None) -> str:
    try:
        message = json.loads(body or b"")["message"]
    except (ValueError, KeyError, TypeError):
        message = (body or b"").decode(errors="replace")[:200]
    return f"{status} {message}"


class KubeClient:
    """Raw JSON access to the API server through an authenticated kubernetes ApiClient."""

    def __init__(self, api: Any, timeout: float = 30.0) -> None:
        self._api = api
        self._timeout = timeout
        self.requests: dict[str, int] = {}

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        key = f"{method} {path}"
        self.requests[key] = self.requests.get(key, 0) + 1
        try:
            # kubernetes >= 37 (openapi-generator 7): serialise, send, and check the status here.
            verb, url, headers, payload, _ = self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                verb, url, header_params=headers, body=payload, _request_timeout=self._timeout
            )
            data = response.read()
        except Exception as error:  # urllib3, socket and TLS errors: the API server is unreachable
            raise KubeRequestFailed(f"{type(error).__name__}: {error}", None) from None
        if not 200 <= response.status < 300:
            raise KubeRequestFailed(_error_message(response.status, data), response.status)
        return json.loads(data) if data else None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One raw call; failures raise KubeRequestFailed carrying the HTTP status."""
        return self._call(method, path, body=body)

    def list(self, path: str, what: str, query: Mapping[str, str] | None = None) -> list[Any]:
        try:
            body = self._call("GET", path, query=query)
        except KubeRequestFailed as error:
            raise SourceError(f"cannot list {what}: {error}") from None
        items = body.get("items") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            raise SourceError(f"cannot list {what}: the reply has no items list")
        return items

    def snapshot(self) -> ClusterSnapshot:
        """The cluster as one pass needs it: five lists, whatever the number of policies."""
        policies = self.list(CILIUM_POLICIES, "CiliumClusterwideNetworkPolicies")
        router_policies = self.list(ROUTER_POLICIES, "RouterPolicies")
        pods = self.list(PODS, "pods", {"fieldSelector": LIVE_PODS})
        services = self.list(SERVICES, "services")
        namespaces = self.list(NAMESPACES, "namespaces")
        return ClusterSnapshot(
            policies=[policy for policy in policies if is_annotated(policy)],
            pods=[pod_from_raw(pod) for pod in pods],
            services=[service_from_raw(service) for service in services],
            namespace_labels={
                str(ns["metadata"]["name"]): dict(ns["metadata"].get("labels") or {})
                for ns in namespaces
            },
            router_policies={str(rp["metadata"]["name"]): rp for rp in router_policies},
        )

    def create_router_policy(self, policy: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = policy["metadata"]
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "RouterPolicy",
            "metadata": {
                "name": meta["name"],
                "labels": {"app.kubernetes.io/managed-by": "router-policy-sync"},
                "ownerReferences": [
                    {
                        "apiVersion": "cilium.io/v2",
                        "kind": "CiliumClusterwideNetworkPolicy",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {},
        }
        try:
            created: Mapping[str, Any] = self._call("POST", ROUTER_POLICIES, body=body)
        except KubeRequestFailed as error:
            raise KubeWriteError(f"cannot create RouterPolicy {meta['name']}: {error}") from None
        return created

    def delete_router_policy(self, name: str, uid: str) -> None:
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            self._call("DELETE", f"{ROUTER_POLICIES}/{name}", body=body)
        except KubeRequestFailed as error:
            if error.status == 404:
                return
            raise KubeWriteError(f"cannot delete RouterPolicy {name}: {error}") from None

    def create_event(self, body: Mapping[str, Any]) -> None:
        namespace = body["metadata"]["namespace"]
        try:
            self._call("POST", f"/api/v1/namespaces/{namespace}/events", body=dict(body))
        except KubeRequestFailed as error:
            name = body["involvedObject"]["name"]
            raise KubeWriteError(
                f"cannot record an Event on RouterPolicy {name}: {error}"
            ) from None

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        try:
            self._call(
                "PATCH",
                f"{ROUTER_POLICIES}/{name}/status",
                body={"status": dict(status)},
                content_type="application/merge-patch+json",
            )
        except KubeRequestFailed as error:
            raise KubeWriteError(f"cannot write status of RouterPolicy {name}: {error}") from None


class KubeRequestFailed(Exception):
    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
