"""A fake of the one seam `KubeClient` uses: the kubernetes ApiClient's raw request pair.

`KubeClient(api)` calls `api.param_serialize(...)` and then `api.call_api(...)`, and reads
`.status` and `.read()` from the reply. `FakeApi` records every request it is sent (method,
path, query, Accept header, decoded body) and answers through a handler, so the tests check
pagination, retries and the Lease protocol without any API server or network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode


@dataclass
class Reply:
    status: int
    payload: Any = None  # encoded as JSON unless it is already bytes

    def read(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return b"" if self.payload is None else json.dumps(self.payload).encode()


def status(code: int, message: str, reason: str = "") -> Reply:
    """A metav1.Status failure reply, as the API server sends one."""
    body = {"kind": "Status", "status": "Failure", "message": message, "reason": reason}
    return Reply(code, {**body, "code": code})


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    query: dict[str, str]
    accept: str
    body: Any


Handler = Callable[[Sent], "Reply | BaseException"]


class Runaway(BaseException):
    """The client kept sending past any sane count (or past a script): a BaseException, so that
    `KubeClient`'s catch-all for transport errors cannot turn it into a retry."""


@dataclass
class FakeApi:
    handler: Handler
    sent: list[Sent] = field(default_factory=list)
    max_requests: int = 100  # a looping client fails its test instead of hanging it

    def param_serialize(
        self,
        *,
        method: str,
        resource_path: str,
        query_params: list[tuple[str, str]],
        header_params: Mapping[str, str],
        body: Any,
        auth_settings: list[str],
    ) -> tuple[str, str, dict[str, str], str | None, None]:
        url = resource_path + ("?" + urlencode(query_params) if query_params else "")
        payload = None if body is None else json.dumps(body)  # what goes on the wire
        return method, url, dict(header_params), payload, None

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Mapping[str, str] | None = None,
        body: str | None = None,
        _request_timeout: float | None = None,
    ) -> Reply:
        path, _, query = url.partition("?")
        sent = Sent(
            method,
            path,
            dict(parse_qsl(query)),
            (header_params or {}).get("Accept", ""),
            None if body is None else json.loads(body),
        )
        self.sent.append(sent)
        if len(self.sent) > self.max_requests:
            raise Runaway(f"more than {self.max_requests} requests; the last was {sent}")
        reply = self.handler(sent)
        if isinstance(reply, BaseException):
            raise reply
        return reply


def scripted(*replies: Reply | BaseException) -> Handler:
    """A handler answering requests with `replies` in order (and failing past their end)."""
    queue = list(replies)

    def handle(sent: Sent) -> Reply | BaseException:
        if not queue:
            raise Runaway(f"unexpected request {sent}")
        return queue.pop(0)

    return handle


class ListServer:
    """Lists served the way the API server pages them: `limit`, then opaque `continue` tokens.

    A token is valid until `expire()` is called (etcd compacted the revision it names); after
    that it answers 410 Gone, as kube-apiserver does. A list read without `limit` is whole.
    """

    def __init__(self, lists: Mapping[str, Iterable[Any]], *, null_when_empty: bool = False):
        self.lists = {path: list(items) for path, items in lists.items()}
        self.null_when_empty = null_when_empty
        self._tokens: dict[str, int] = {}
        self.expired = False
        self.on_page: Callable[[ListServer, Sent], None] = lambda server, sent: None

    def expire(self) -> None:
        self.expired = True

    def handle(self, sent: Sent) -> Reply:
        assert sent.method == "GET", sent
        items = self.lists.get(sent.path)
        if items is None:
            return status(404, "the server could not find the requested resource", "NotFound")
        start = 0
        if "continue" in sent.query:
            if self.expired or sent.query["continue"] not in self._tokens:
                return status(
                    410,
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.",
                    "Expired",
                )
            start = self._tokens[sent.query["continue"]]
        end = start + int(sent.query["limit"]) if "limit" in sent.query else len(items)
        page = items[start:end]
        meta: dict[str, Any] = {"resourceVersion": "42"}
        if end < len(items):
            token = f"token-{len(self._tokens) + 1}"
            self._tokens[token] = end
            meta["continue"] = token
        self.on_page(self, sent)
        body = None if not page and self.null_when_empty else page
        return Reply(200, {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": body})


class FakeTime:
    """Wall clock, monotonic clock and sleep in one: sleeping advances both clocks."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.mono = 1000.0
        self.slept: list[float] = []

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds
        self.now += timedelta(seconds=seconds)


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds}s where nothing should be retried")
