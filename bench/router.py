"""The bench's router: the RouterOS emulator with byte counters, seeded with foreign objects."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench.common import PASSWORD, PREFIX
from sync_job.testing.emulator import ADDRESS_LIST, FILTER, NAT, RouterOSEmulator


class BenchEmulator(RouterOSEmulator):
    """The RouterOS emulator plus byte counters and its seeded state kept for resets.

    Only public methods are extended; the emulator's own indexed duplicate check keeps an
    address-list add as cheap at 50,000 entries as at none, so the job, not the emulator,
    dominates a first run.
    """

    def __init__(self) -> None:
        super().__init__("admin", PASSWORD)
        self.bytes_out: Counter[str] = Counter()  # response bodies, by method
        self.bytes_in: Counter[str] = Counter()  # request bodies, by method
        self.seeded: dict[str, list[dict[str, str]]] | None = None

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: bytes,
        authorization: str | None,
    ) -> tuple[int, bytes]:
        status, payload = super().handle(method, path, query, body, authorization)
        with self.locked():
            self.bytes_out[method.upper()] += len(payload)
            self.bytes_in[method.upper()] += len(body)
        return status, payload

    def reset_counts(self) -> None:
        with self.locked():
            super().reset_counts()
            self.bytes_out.clear()
            self.bytes_in.clear()

    def save_seed(self) -> None:
        """Remember the tables as seeded (`restore_seed` puts them back before a first run)."""
        self.seeded = self.snapshot()

    def restore_seed(self) -> None:
        assert self.seeded is not None
        self.restore(self.seeded)

    def counts(self) -> dict[str, Any]:
        with self.locked():
            by_method: Counter[str] = Counter()
            moves = 0
            for (method, path), n in self.requests.items():
                by_method[method] += n
                if method == "POST" and path.endswith("/move"):
                    moves += n
            return {
                "by_method": dict(sorted(by_method.items())),
                "reads": by_method["GET"],
                "writes": sum(n for m, n in by_method.items() if m != "GET"),
                "moves": moves,
                "bytes_read_by_job": sum(self.bytes_out.values()),
                "bytes_sent_by_job": sum(self.bytes_in.values()),
            }


def seed_router(emulator: BenchEmulator, f: float) -> None:
    """Foreign filter rules around the marker, foreign NAT rules, foreign address-list entries."""
    n_filter, n_nat, n_entries = round(3000 * f), round(500 * f), round(50_000 * f)
    base = int(ipaddress.IPv4Address("100.64.0.0"))
    for i in range(n_filter):
        if i == n_filter - n_filter // 10:  # the marker above the last tenth (the drop rules)
            emulator.seed(
                FILTER,
                {
                    "chain": "forward",
                    "action": "passthrough",
                    "disabled": "true",
                    "comment": f"{PREFIX}::marker",
                },
            )
        emulator.seed(
            FILTER,
            {
                "chain": ("input", "forward")[i % 2],
                "action": ("accept", "drop")[i % 3 == 0],
                "protocol": ("tcp", "udp")[i % 2],
                "dst-port": str(1000 + i % 60000),
                "src-address-list": f"blocklist-{i % 40}",
                "in-interface-list": "WAN",
                "comment": f"user rule {i}",
            },
        )
    for i in range(n_nat):
        emulator.seed(
            NAT,
            {
                "chain": "dstnat",
                "action": "dst-nat",
                "protocol": "tcp",
                "dst-port": str(20000 + i),
                "to-addresses": f"192.168.{i // 250}.{i % 250 + 1}",
                "to-ports": "22",
                "comment": f"user forward {i}",
            },
        )
    for i in range(n_entries):
        emulator.seed(
            ADDRESS_LIST,
            {
                "list": f"blocklist-{i % 40}",
                "address": str(ipaddress.IPv4Address(base + i)),
                "comment": "imported from a public blocklist",
            },
        )
