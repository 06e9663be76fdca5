"""The emulator's fault modes do what they say, in-process and over HTTP, and odd replies are
errors, not crashes.
"""

from __future__ import annotations

import httpx
import pytest

from sync_job.errors import RouterError
from sync_job.router.client import (
    RouterWriter,
)
from sync_job.router.tables import Table
from sync_job.testing.emulator import WRITE_METHODS, Crash, RouterOSEmulator
from sync_job.testing.faults import Fault, Faults
from tests.support.router import (
    ADDRESS_LIST,
    FILTER,
    NAT,
    PASSWORD,
)
from tests.support.scenario import (
    FakeClock,
    fresh_router,
    reader,
    rest,
)


def test_fault_modes_in_process() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    faults = Faults(emulator)
    body = {"chain": "forward", "comment": "x"}
    with rest(emulator) as http:
        faults.fail_nth(1, 503)
        assert http.get(FILTER).status_code == 503
        faults.fail_nth(2, 400, "failure: simulated")
        reply = http.get(FILTER)
        assert (reply.status_code, reply.json()["detail"]) == (400, "failure: simulated")
        faults.fail_nth(3, 401)
        assert http.get(FILTER).json() == {"error": 401, "message": "Unauthorized"}
        faults.drop_before(1, methods=WRITE_METHODS)
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        assert emulator.rows(FILTER) == []  # dropped before: nothing happened
        faults.drop_after_write(1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        assert len(emulator.rows(FILTER)) == 1  # the write happened, the client never heard
        faults.delay_nth(3, 5.0, methods=WRITE_METHODS)
        with pytest.raises(httpx.ReadTimeout):
            http.put(FILTER, json=body, timeout=0.2)
        assert len(emulator.rows(FILTER)) == 2  # processed at once, the reply came too late
        faults.session_closed(4)
        reply = http.put(FILTER, json=body)
        assert (reply.status_code, reply.json()["detail"]) == (400, "Session closed")
        assert len(emulator.rows(FILTER)) == 3  # ... and it ran anyway
        faults.session_closed(5, applied=False)
        assert http.put(FILTER, json=body).status_code == 400
        assert len(emulator.rows(FILTER)) == 3
        faults.crash_after_write(4)
        with pytest.raises(Crash):
            http.patch(f"{FILTER}/{emulator.rows(FILTER)[0]['.id']}", json={"comment": "y"})
        assert emulator.rows(FILTER)[0]["comment"] == "y"
        assert http.get(FILTER).status_code == 200  # every fault above fired exactly once
    assert [(i.method, i.fault) for i in faults.injected] == [
        ("GET", "503"),
        ("GET", "400 failure: simulated"),
        ("GET", "401"),
        ("PUT", "drop before"),
        ("PUT", "drop after"),
        ("PUT", "delay 5.0s"),
        ("PUT", "400 Session closed (applied)"),
        ("PUT", "400 Session closed"),
        ("PATCH", "crash"),
    ]
    assert [i.write for i in faults.injected if i.method != "GET"] == [0, 1, 2, 3, 0, 4]
    assert [i.request for i in faults.injected] == list(range(1, 10))


def test_fail_fraction_is_seeded_and_close_to_p() -> None:
    def outcomes(seed: int) -> list[int]:
        emulator = RouterOSEmulator("admin", PASSWORD)
        Faults(emulator).fail_fraction(0.1, seed, (500, 503))
        with rest(emulator) as http:
            return [http.get(FILTER).status_code for _ in range(1000)]

    first = outcomes(7)
    assert first == outcomes(7) and first != outcomes(8)
    assert set(first) == {200, 500, 503}
    assert 60 <= sum(code != 200 for code in first) <= 140


def test_fault_modes_over_http() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    faults = Faults(emulator)
    body = {"chain": "forward", "comment": "x"}
    with emulator.serve() as url, httpx.Client(base_url=url, auth=("admin", PASSWORD)) as http:
        faults.drop_before(1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(FILTER)
        faults.drop_after_write(1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        assert len(emulator.rows(FILTER)) == 1
        faults.delay_nth(3, 1.0)
        with pytest.raises(httpx.ReadTimeout):
            http.put(FILTER, json=body, timeout=0.2)
        assert len(emulator.rows(FILTER)) == 2
        faults.crash_after_write(3)  # over HTTP a "crash" of the client is a dropped reply
        with pytest.raises(httpx.RemoteProtocolError):
            http.put(FILTER, json=body)
        faults.fail_nth(5, 503)
        assert http.get(FILTER).status_code == 503
        assert len(http.get(FILTER).json()) == 3


def test_fault_rules_refuse_what_can_never_fire() -> None:
    emulator = RouterOSEmulator("admin", PASSWORD)
    faults = Faults(emulator)
    with rest(emulator) as http:
        http.get(FILTER)
    with pytest.raises(ValueError, match="already happened"):
        faults.fail_nth(1, 500)
    with pytest.raises(ValueError):
        faults.on_write(1, Fault.dropped_before())  # a write that never happened has no "after"
    with pytest.raises(ValueError):
        faults.fail_fraction(1.5, 0)
    with pytest.raises(ValueError):
        faults.drop_before(2, methods={"FETCH"})


def test_odd_replies_are_errors_not_crashes() -> None:
    """RouterOS may put raw control characters in strings (a DHCP host name, reference 5.1);
    a proxy may answer with HTML. Neither may crash the client."""
    emulator, _ = fresh_router()
    replies = {
        ("GET", f"/rest/{NAT}"): (200, b'[{".id":"*99","comment":"host\x1bname\x07"}]'),
        ("GET", f"/rest/{ADDRESS_LIST}"): (200, b"<html>502 Bad Gateway</html>"),
        ("PUT", f"/rest/{FILTER}"): (201, b"<html>ok</html>"),
    }
    emulator.before_request.append(lambda method, path: replies.get((method, path)))
    clock = FakeClock()
    router, http = reader(emulator, clock, writer=True)
    assert isinstance(router, RouterWriter)
    with http:
        assert router.rows(Table.NAT) == [{".id": "*99", "comment": "host\x1bname\x07"}]
        with pytest.raises(RouterError, match="not JSON"):
            router.rows(Table.ADDRESS_LIST)
        with pytest.raises(RouterError, match="not JSON") as failure:
            router.create(Table.FILTER, {"chain": "forward", "comment": "x"})
        assert failure.value.ambiguous  # the write may well have happened: re-read first
