"""The Kubernetes API as the job speaks it: raw JSON requests, paged lists, and the paths it uses.

Requests go through the kubernetes client's raw `call_api` and are parsed as plain JSON: the
generated model classes are never built (for thousands of pods that deserialisation costs more
than the list). What is read lives in `sync_job.source.cluster`, what is written in
`sync_job.status.writes` and `sync_job.lease`; every path they touch is named here, so this
module and the RBAC in `manifests/` can be read side by side.

Lists are read in pages (`limit` + `continue`), the way client-go's pager does
(k8s.io/client-go/tools/pager), so at most one page is ever decoded at once. A `continue` token
the server has compacted away answers 410 Gone; like the pager's `FullListIfExpired`, the list is
then read again once, whole, without a limit. GETs (list pages and single reads) are retried with
capped, jittered exponential backoff on connection errors, timeouts, 429 and 5xx, as the router
reads are (`sync_job.router.client`); writes are sent once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sync_job.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

GROUP = "router-policy-sync.homelab-helper.benfiola.com"
ROUTER_POLICIES = f"/apis/{GROUP}/v1/routerpolicies"
CILIUM_POLICIES = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies"
# Cilium serves CiliumCIDRGroup as v2 since 1.18; 1.15 to 1.17 serve only v2alpha1.
CIDR_GROUPS = "/apis/cilium.io/v2/ciliumcidrgroups"
CIDR_GROUPS_V2ALPHA1 = "/apis/cilium.io/v2alpha1/ciliumcidrgroups"
PODS = "/api/v1/pods"
SERVICES = "/api/v1/services"
NAMESPACES = "/api/v1/namespaces"


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


# Only running pods can select a gateway (a Pending pod may never start); leaving the others out
# server-side also shrinks the largest list.
LIVE_PODS = "status.phase=Running"
JSON = "application/json"
# Every API server since 1.15 serves lists of any kind as metadata only on request.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
# client-go's pager default (tools/pager.defaultPageSize).
PAGE_SIZE = 500
READ_ATTEMPTS = 4
BACKOFF_START = 0.2
BACKOFF_CAP = 5.0

T = TypeVar("T")


class _NotAList(ValueError):
    """The reply is JSON, but not an object with an `items` array."""


def _page(data: bytes, *, null_is_empty: bool) -> tuple[list[Any], str | None]:
    """One list reply's items and its `continue` token (None on the last page).

    `"items": null` is an empty page only with `null_is_empty`: metadata-only lists send it so.
    """
    page = json.loads(data)  # ValueError (UnicodeDecodeError included) when not JSON
    if not isinstance(page, dict):
        raise _NotAList("the reply has no items list")
    items = page.get("items", 0)
    if items is None and null_is_empty:
        items = []
    if not isinstance(items, list):
        raise _NotAList("the reply has no items list")
    meta = page.get("metadata")
    token = (meta.get("continue") if isinstance(meta, dict) else None) or None
    if token is not None and not isinstance(token, str):
        raise _NotAList("the reply's continue token is not a string")
    return items, token


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


def _retryable(status: int | None) -> bool:
    """No answer at all, throttled, or a server error: a later attempt may succeed."""
    return status is None or status == 429 or status >= 500


class KubeClient:
    """Raw JSON access to the API server through an authenticated kubernetes ApiClient.

    `page_size` is each list request's `limit`; `read_attempts` bounds the tries of one GET.
    `sleep` and `rng` are injectable so tests can check the backoff without waiting.
    """

    def __init__(
        self,
        api: Any,
        timeout: float = 30.0,
        *,
        page_size: int = PAGE_SIZE,
        read_attempts: int = READ_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._timeout = timeout
        self._page_size = max(1, page_size)
        self._attempts = max(1, read_attempts)
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        accept: str,
    ) -> bytes:
        """One attempt; the reply's bytes, or KubeRequestFailed carrying the HTTP status."""
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
            data: bytes = response.read()
        except Exception as error:  # urllib3, socket and TLS errors: the API server is unreachable
            raise KubeRequestFailed(f"{type(error).__name__}: {error}", None) from None
        if not 200 <= response.status < 300:
            raise KubeRequestFailed(_error_message(response.status, data), response.status)
        return data

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
        """One request (a GET up to `read_attempts` times); the parsed JSON reply, or with `raw`
        its undecoded bytes."""
        attempts = self._attempts if method == "GET" else 1
        delay = BACKOFF_START
        for attempt in range(1, attempts + 1):
            try:
                data = self._send(method, path, query, body, content_type, accept)
                break
            except KubeRequestFailed as error:
                if attempt == attempts or not _retryable(error.status):
                    raise
                pause = min(delay, BACKOFF_CAP) * self._rng.uniform(0.5, 1.5)
                log.warning(
                    "GET %s: %s; retrying in %.2fs (attempt %d of %d)",
                    path, error, pause, attempt, attempts,
                )  # fmt: skip
                self._sleep(pause)
                delay *= 2
        if raw:
            return data
        return json.loads(data) if data else None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One raw call; failures raise KubeRequestFailed carrying the HTTP status."""
        return self.call(method, path, body=body)

    def collect(
        self,
        path: str,
        what: str,
        keep: Callable[[Any], T | None],
        query: Mapping[str, str] | None = None,
        *,
        metadata_only: bool = False,
    ) -> list[T]:
        """`keep(item)` for every item of one list, read page by page; None results are dropped.

        Only one page is decoded at a time: `keep` reduces each item as its page arrives. When a
        `continue` token has expired (410 Gone), what was kept is dropped and the list is read
        again once, whole, so nothing is counted twice.
        """
        accept = METADATA_ONLY if metadata_only else JSON
        kept: list[T] = []
        token: str | None = None
        paged = True
        while True:
            params = dict(query or {})
            if paged:
                params["limit"] = str(self._page_size)
            if token is not None:
                params["continue"] = token
            try:
                data: bytes = self.call("GET", path, query=params, accept=accept, raw=True)
            except KubeRequestFailed as error:
                if error.status == 410 and token is not None and paged:
                    log.warning(
                        "listing %s: the continue token expired (%s); listing them again "
                        "in one request",
                        what, error,
                    )  # fmt: skip
                    kept, token, paged = [], None, False
                    continue
                if error.status == 404:
                    raise NotServed(f"cannot list {what}: {error}") from None
                raise SourceError(f"cannot list {what}: {error}") from None
            try:
                items, token = _page(data, null_is_empty=metadata_only)
            except _NotAList as error:
                raise SourceError(f"cannot list {what}: {error}") from None
            except ValueError as error:  # not UTF-8 or not JSON
                raise SourceError(f"cannot list {what}: the reply is not JSON ({error})") from None
            del data
            for item in items:
                reduced = keep(item)
                if reduced is not None:
                    kept.append(reduced)
            del items
            if token is None or not paged:
                return kept

    def list(
        self,
        path: str,
        what: str,
        query: Mapping[str, str] | None = None,
        *,
        metadata_only: bool = False,
    ) -> list[Any]:
        """Every item of one list as decoded JSON (see `collect`)."""
        return self.collect(path, what, _same, query, metadata_only=metadata_only)


def _same(item: Any) -> Any:
    return item


class NotServed(SourceError):
    """A list answered 404: the API server does not serve that resource (its CRD is absent)."""


class KubeRequestFailed(Exception):
    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
