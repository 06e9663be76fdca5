"""Kubernetes I/O: one list per kind into a ClusterSnapshot, and RouterPolicy writes.

Lists go through the client's raw `call_api` and are parsed as plain JSON: the generated model
classes are never built (for thousands of pods that deserialisation costs more than the list).
Every failure becomes a SourceError (reads) or KubeWriteError (writes) naming the object.

The pod list is the largest read of a pass, so it is kept to what selection needs:

- finished pods are left out server-side (field selector on `status.phase`);
- pods are read as metadata only (`PartialObjectMetadataList`: name, namespace, labels), about
  half the bytes of full pods, unless an annotated policy mentions the service-account label
  (`io.cilium.k8s.policy.serviceaccount`), the one selector key that needs `spec`;
- list items are decoded one at a time and reduced to the snapshot's small `Pod`/`Service`
  records at once, so the decoded list is never held whole (peak memory is the reply's text, not
  the several times larger tree of every pod's `managedFields`).

Namespaces, whose labels are all a pass needs of them, are read as metadata only as well.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sync_job.cluster import ClusterSnapshot, is_annotated, pod_from_raw, service_from_raw
from sync_job.errors import ConfigError, KubeWriteError, SourceError
from sync_job.selectors import SERVICE_ACCOUNT_KEY

log = logging.getLogger(__name__)

GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = f"/apis/{GROUP}/v1/routerpolicies"
CILIUM_POLICIES = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
PODS = "/api/v1/pods"
SERVICES = "/api/v1/services"
NAMESPACES = "/api/v1/namespaces"
# Finished pods can never be selected; leaving them out server-side shrinks the largest list.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
JSON = "application/json"
# Every API server since 1.15 serves lists of any kind as metadata only on request.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _NotAList(ValueError):
    """The reply is JSON, but not an object with an `items` array."""


def _skip(text: str, index: int) -> int:
    end: int = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
    return end


def _expect(text: str, index: int, chars: str) -> str:
    found = text[index : index + 1]
    if not found or found not in chars:
        raise _NotAList(f"expected one of {chars!r} at offset {index}")
    return found


def iter_items(text: str, *, null_is_empty: bool = False) -> Iterator[Any]:
    """The elements of a JSON list reply's top-level `items` array, decoded one at a time.

    Equivalent to `json.loads(text)["items"]` (raising _NotAList when that is not a list; with
    `null_is_empty`, `"items": null` is an empty list, as metadata-only lists send it), but never
    holds more than one decoded item: the reply's other members are decoded and dropped.
    """
    decode = _DECODER.raw_decode
    index = _skip(text, 0)
    _expect(text, index, "{")
    index = _skip(text, index + 1)
    found = False
    if text[index : index + 1] != "}":
        while True:
            key, index = decode(text, index)
            if not isinstance(key, str):
                raise _NotAList("an object key is not a string")
            index = _skip(text, index)
            _expect(text, index, ":")
            index = _skip(text, index + 1)
            if key == "items" and text[index : index + 1] == "[":
                found = True
                index = _skip(text, index + 1)
                if text[index : index + 1] != "]":
                    while True:
                        item, index = decode(text, index)
                        yield item
                        index = _skip(text, index)
                        if _expect(text, index, ",]") == "]":
                            break
                        index = _skip(text, index + 1)
                index += 1
            else:
                value, index = decode(text, index)
                if key == "items":
                    found = value is None and null_is_empty
            index = _skip(text, index)
            if _expect(text, index, ",}") == "}":
                break
            index = _skip(text, index + 1)
    if _skip(text, index + 1) != len(text):
        raise _NotAList("extra data after the reply")
    if not found:
        raise _NotAList("the reply has no items list")


def _mentions_service_account(policies: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any policy could select on the service-account label, which needs pod specs.

    Selectors live in `spec` and `specs`, and a selector key equal to the label (with or without
    a source prefix) contains it as text: rules that do not contain it anywhere cannot select on it.
    """
    return any(
        SERVICE_ACCOUNT_KEY in json.dumps([policy.get("spec"), policy.get("specs")])
        for policy in policies
    )


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

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = JSON,
        raw: bool = False,
    ) -> Any:
        """One request; the parsed JSON reply, or with `raw` its undecoded bytes."""
        try:
            # kubernetes >= 37 (openapi-generator 7): serialise, send, and check the status here.
            verb, url, headers, payload, _ = self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params={"Accept": accept, "Content-Type": content_type},
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
        if raw:
            return data
        return json.loads(data) if data else None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One raw call; failures raise KubeRequestFailed carrying the HTTP status."""
        return self._call(method, path, body=body)

    def items(
        self,
        path: str,
        what: str,
        query: Mapping[str, str] | None = None,
        *,
        metadata_only: bool = False,
    ) -> Iterator[Any]:
        """The items of one list, decoded one at a time (see `iter_items`)."""
        accept = METADATA_ONLY if metadata_only else JSON
        try:
            data: bytes = self._call("GET", path, query=query, accept=accept, raw=True)
        except KubeRequestFailed as error:
            raise SourceError(f"cannot list {what}: {error}") from None
        try:
            text = data.decode()
            del data
            yield from iter_items(text, null_is_empty=metadata_only)
        except _NotAList:
            raise SourceError(f"cannot list {what}: the reply has no items list") from None
        except ValueError as error:  # not UTF-8 or not JSON
            raise SourceError(f"cannot list {what}: the reply is not JSON ({error})") from None

    def list(self, path: str, what: str, query: Mapping[str, str] | None = None) -> list[Any]:
        return list(self.items(path, what, query))

    def snapshot(self) -> ClusterSnapshot:
        """The cluster as one pass needs it: five lists, whatever the number of policies."""
        policies = [
            policy
            for policy in self.items(CILIUM_POLICIES, "CiliumClusterwideNetworkPolicies")
            if is_annotated(policy)
        ]
        router_policies = {
            str(rp["metadata"]["name"]): rp for rp in self.items(ROUTER_POLICIES, "RouterPolicies")
        }
        pod_query = {"fieldSelector": LIVE_PODS}
        need_specs = _mentions_service_account(policies)
        pods = [
            pod_from_raw(pod)
            for pod in self.items(PODS, "pods", pod_query, metadata_only=not need_specs)
        ]
        services = [service_from_raw(service) for service in self.items(SERVICES, "services")]
        namespace_labels = {
            str(ns["metadata"]["name"]): dict(ns["metadata"].get("labels") or {})
            for ns in self.items(NAMESPACES, "namespaces", metadata_only=True)
        }
        return ClusterSnapshot(
            policies=policies,
            pods=pods,
            services=services,
            namespace_labels=namespace_labels,
            router_policies=router_policies,
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
