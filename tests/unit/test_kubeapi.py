"""KubeClient against a fake ApiClient: paged lists, the 410 fallback, `items: null`, retries."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from sync_job.errors import SourceError
from sync_job.kubeapi import JSON, METADATA_ONLY, PODS, KubeClient, KubeRequestFailed
from tests.unit.fake_kube_api import FakeApi, ListServer, Reply, no_sleep, scripted, status

PODS_7 = [{"metadata": {"name": f"pod-{n}", "namespace": "default"}} for n in range(7)]
EMPTY = Reply(200, {"kind": "List", "metadata": {}, "items": []})


class Unjittered(random.Random):
    """Jitter that is always the middle of its range, so the delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def names(items: list[Any]) -> list[str]:
    return [item["metadata"]["name"] for item in items]


def client(api: FakeApi, **kwargs: Any) -> KubeClient:
    kwargs.setdefault("sleep", no_sleep)
    return KubeClient(api, **kwargs)


# --- pagination ---------------------------------------------------------------------------------


def test_a_list_is_read_in_pages_following_the_continue_tokens() -> None:
    server = ListServer({PODS: PODS_7})
    api = FakeApi(server.handle)
    pods = client(api, page_size=3).list(PODS, "pods", {"fieldSelector": "status.phase!=Failed"})
    assert names(pods) == [f"pod-{n}" for n in range(7)]
    assert [sent.query for sent in api.sent] == [
        {"fieldSelector": "status.phase!=Failed", "limit": "3"},
        {"fieldSelector": "status.phase!=Failed", "limit": "3", "continue": "token-1"},
        {"fieldSelector": "status.phase!=Failed", "limit": "3", "continue": "token-2"},
    ]


def test_the_default_page_size_is_clientgos_500() -> None:
    api = FakeApi(ListServer({PODS: PODS_7}).handle)
    assert len(client(api).list(PODS, "pods")) == 7
    assert [sent.query for sent in api.sent] == [{"limit": "500"}]


def test_collect_reduces_and_filters_items_page_by_page() -> None:
    reduced: list[str] = []

    def keep(item: Any) -> str | None:
        name = str(item["metadata"]["name"])
        reduced.append(name)
        return None if name.endswith(("1", "3")) else name.upper()

    server = ListServer({PODS: PODS_7})
    seen_at_page: list[int] = []
    server.on_page = lambda _server, _sent: seen_at_page.append(len(reduced))
    kept = client(FakeApi(server.handle), page_size=3).collect(PODS, "pods", keep)
    assert kept == ["POD-0", "POD-2", "POD-4", "POD-5", "POD-6"]
    # Each page is reduced before the next one is asked for: one page in memory at a time.
    assert seen_at_page == [0, 3, 6]


def test_an_expired_continue_token_falls_back_to_one_full_list(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ListServer({PODS: PODS_7})
    api = FakeApi(server.handle)
    kube = client(api, page_size=3)

    def grow(srv: ListServer, sent: Any) -> None:
        # etcd compacts while the first page is processed, and a pod is added meanwhile.
        if "limit" in sent.query and "continue" not in sent.query:
            srv.expire()
            srv.lists[PODS].append({"metadata": {"name": "pod-new", "namespace": "default"}})

    server.on_page = grow
    with caplog.at_level(logging.WARNING, logger="sync_job.kubeapi"):
        pods = kube.list(PODS, "pods")
    # Nothing of the first page is kept twice: the full list replaces it.
    assert names(pods) == [*(f"pod-{n}" for n in range(7)), "pod-new"]
    assert [sent.query for sent in api.sent] == [
        {"limit": "3"},
        {"limit": "3", "continue": "token-1"},
        {},
    ]
    assert "listing pods: the continue token expired" in caplog.text
    assert "410" in caplog.text


def test_the_full_list_fallback_happens_once() -> None:
    gone = status(410, "too old", "Expired")
    page = Reply(200, {"metadata": {"continue": "t1"}, "items": PODS_7[:3]})
    api = FakeApi(scripted(page, gone, gone))
    with pytest.raises(SourceError, match=r"^cannot list pods: 410 too old$"):
        client(api, page_size=3).list(PODS, "pods")
    assert [sent.query for sent in api.sent] == [
        {"limit": "3"},
        {"limit": "3", "continue": "t1"},
        {},
    ]


def test_a_410_on_the_first_page_is_an_error_not_a_fallback() -> None:
    api = FakeApi(scripted(status(410, "resourceVersion too old", "Expired")))
    with pytest.raises(SourceError, match=r"^cannot list pods: 410 resourceVersion too old$"):
        client(api).list(PODS, "pods")
    assert len(api.sent) == 1


# --- reply shapes -------------------------------------------------------------------------------


def test_metadata_only_lists_ask_for_partial_metadata_and_read_null_items_as_empty() -> None:
    api = FakeApi(ListServer({PODS: []}, null_when_empty=True).handle)
    assert client(api).list(PODS, "pods", metadata_only=True) == []
    assert api.sent[0].accept == METADATA_ONLY
    assert api.sent[0].query == {"limit": "500"}


def test_null_items_end_a_paged_metadata_list() -> None:
    page = Reply(200, {"metadata": {"continue": "t1"}, "items": PODS_7[:2]})
    last = Reply(200, {"metadata": {}, "items": None})
    api = FakeApi(scripted(page, last))
    assert names(client(api).list(PODS, "pods", metadata_only=True)) == ["pod-0", "pod-1"]


def test_null_items_are_refused_in_a_full_list() -> None:
    api = FakeApi(scripted(Reply(200, {"items": None})))
    with pytest.raises(SourceError, match=r"^cannot list pods: the reply has no items list$"):
        client(api).list(PODS, "pods")
    assert api.sent[0].accept == JSON


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "the reply has no items list"),
        ({"kind": "List"}, "the reply has no items list"),
        ({"items": 3}, "the reply has no items list"),
        ({"items": [], "metadata": {"continue": 7}}, "the reply's continue token is not a string"),
        (b'{"items": [1,', "the reply is not JSON"),
        (b"\xff\xfe", "the reply is not JSON"),
    ],
)
def test_replies_that_are_not_a_list_name_the_list(payload: Any, message: str) -> None:
    with pytest.raises(SourceError, match=rf"^cannot list services: {message}"):
        client(FakeApi(scripted(Reply(200, payload)))).list("/api/v1/services", "services")


# --- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        status(503, "the server is currently unable to handle the request"),
        status(500, "etcdserver: request timed out"),
        status(429, "too many requests, please try again later"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("read timed out"),
    ],
    ids=["503", "500", "429", "connection-refused", "timeout"],
)
def test_a_list_page_is_retried_after_a_transient_failure(failure: Reply | BaseException) -> None:
    slept: list[float] = []
    second = Reply(200, {"metadata": {}, "items": PODS_7[3:]})
    first = Reply(200, {"metadata": {"continue": "t1"}, "items": PODS_7[:3]})
    api = FakeApi(scripted(first, failure, second))
    kube = client(api, page_size=3, sleep=slept.append, rng=Unjittered())
    assert names(kube.list(PODS, "pods")) == [f"pod-{n}" for n in range(7)]
    # The failed page is asked for again, with the same token: the earlier page is not re-read.
    assert [sent.query for sent in api.sent] == [
        {"limit": "3"},
        {"limit": "3", "continue": "t1"},
        {"limit": "3", "continue": "t1"},
    ]
    assert slept == [0.2]


def test_a_single_read_is_retried_too() -> None:
    slept: list[float] = []
    api = FakeApi(scripted(status(503, "unavailable"), Reply(200, {"kind": "Lease"})))
    kube = client(api, sleep=slept.append, rng=Unjittered())
    assert kube.request("GET", "/apis/coordination.k8s.io/v1/namespaces/x/leases/y") == {
        "kind": "Lease"
    }
    assert len(api.sent) == 2
    assert slept == [0.2]


def test_retries_are_bounded_with_capped_exponential_backoff() -> None:
    slept: list[float] = []
    api = FakeApi(lambda sent: status(503, "unavailable"))
    kube = client(api, read_attempts=8, sleep=slept.append, rng=Unjittered())
    with pytest.raises(SourceError, match=r"^cannot list pods: 503 unavailable$"):
        kube.list(PODS, "pods")
    assert len(api.sent) == 8
    assert slept == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_backoff_is_jittered_within_half_to_one_and_a_half_times() -> None:
    slept: list[float] = []
    api = FakeApi(lambda sent: status(503, "unavailable"))
    kube = client(api, read_attempts=4, sleep=slept.append, rng=random.Random(7))
    with pytest.raises(SourceError):
        kube.list(PODS, "pods")
    assert len(slept) == 3
    for pause, base in zip(slept, [0.2, 0.4, 0.8], strict=True):
        assert base * 0.5 <= pause <= base * 1.5
    assert slept != [0.2, 0.4, 0.8]


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 422])
def test_client_errors_other_than_429_are_not_retried(code: int) -> None:
    api = FakeApi(scripted(status(code, 'pods is forbidden: User "x" cannot list resource')))
    with pytest.raises(SourceError, match=rf"^cannot list pods: {code} pods is forbidden"):
        client(api).list(PODS, "pods")
    assert len(api.sent) == 1


def test_a_connection_error_names_the_list_once_attempts_run_out() -> None:
    api = FakeApi(lambda sent: ConnectionRefusedError(111, "Connection refused"))
    kube = client(api, read_attempts=2, sleep=lambda seconds: None)
    with pytest.raises(
        SourceError, match=r"^cannot list pods: ConnectionRefusedError: \[Errno 111\] Connection"
    ):
        kube.list(PODS, "pods")
    assert len(api.sent) == 2


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_never_retried(method: str) -> None:
    api = FakeApi(scripted(status(503, "unavailable")))
    with pytest.raises(KubeRequestFailed) as raised:
        client(api).call(method, "/api/v1/namespaces/x/events", body={"kind": "Event"})
    assert raised.value.status == 503
    assert len(api.sent) == 1


def test_a_write_that_cannot_connect_is_sent_once() -> None:
    api = FakeApi(scripted(ConnectionResetError(104, "Connection reset by peer")))
    with pytest.raises(KubeRequestFailed) as raised:
        client(api).request("PUT", "/apis/coordination.k8s.io/v1/namespaces/x/leases/y", {})
    assert raised.value.status is None
    assert len(api.sent) == 1
