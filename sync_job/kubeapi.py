"""The Kubernetes API as the job speaks it: raw JSON requests and lists, and the paths it uses.

Requests go through the kubernetes client's raw `call_api` and are parsed as plain JSON: the
generated model classes are never built (for thousands of pods that deserialisation costs more
than the list). What is read lives in `sync_job.source.cluster`, what is written in
`sync_job.status.writes` and `sync_job.lease`; every path they touch is named here, so this
module and the RBAC in `manifests/` can be read side by side.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from sync_job.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = f"/apis/{GROUP}/v1/routerpolicies"
CILIUM_POLICIES = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
PODS = "/api/v1/pods"
SERVICES = "/api/v1/services"
NAMESPACES = "/api/v1/namespaces"


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


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

    def call(
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
        return self.call(method, path, body=body)

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
            data: bytes = self.call("GET", path, query=query, accept=accept, raw=True)
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


class KubeRequestFailed(Exception):
    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
