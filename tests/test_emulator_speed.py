"""The emulator's speed model: a per-request latency, requests served one at a time, off by
default. The latency is spent through the emulator's `sleep`, replaced here, so nothing waits
for it and nothing is timed."""

from __future__ import annotations

import threading
import time

import httpx

from sync_job.testing.emulator import RouterOSEmulator

AUTH = ("admin", "s3cret")
AL = "ip/firewall/address-list"


def test_off_by_default_no_request_waits() -> None:
    emu = RouterOSEmulator(*AUTH)
    waits: list[float] = []
    emu.sleep = waits.append
    with httpx.Client(transport=emu.transport(), base_url="http://r.invalid/rest", auth=AUTH) as c:
        assert c.get(AL).status_code == 200
    assert waits == []


def test_every_request_takes_the_latency_whatever_its_answer() -> None:
    emu = RouterOSEmulator(*AUTH, latency=0.1)
    waits: list[float] = []
    emu.sleep = waits.append
    with httpx.Client(transport=emu.transport(), base_url="http://r.invalid/rest", auth=AUTH) as c:
        assert c.get(AL).status_code == 200
        assert c.put(AL, json={"list": "l", "address": "192.0.2.1"}).status_code == 201
        assert c.put(AL, json={"list": "l"}).status_code == 400
        assert c.get("ip/firewall/nope").status_code == 400
    assert waits == [0.1] * 4
    emu.latency = 0.0  # settable between runs
    with httpx.Client(transport=emu.transport(), base_url="http://r.invalid/rest", auth=AUTH) as c:
        c.get(AL)
    assert waits == [0.1] * 4


def test_requests_are_served_one_at_a_time() -> None:
    """Two clients over HTTP: no request is inside the emulator while another one is."""
    emu = RouterOSEmulator(*AUTH, latency=0.001)
    inside = 0
    most = 0
    guard = threading.Lock()

    def sleep(seconds: float) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(seconds)  # a real pause, so an unserialised second request would overlap
        with guard:
            inside -= 1

    emu.sleep = sleep
    with emu.serve() as base:

        def client(n: int) -> None:
            with httpx.Client(base_url=base, auth=AUTH) as c:
                for i in range(25):
                    c.put(AL, json={"list": f"l{n}", "address": f"192.0.2.{i + 1}"})

        threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert most == 1
    assert len(emu.rows(AL)) == 75
