"""Fault modes for the RouterOS emulator: errors, delays, dropped connections and crashes.

A test switches them on through `Faults(emulator)`; they are built on the emulator's
`before_request`, `after_request` and `after_write` hooks and work both in-process
(`transport()`) and over HTTP (`serve()`). `Fault` says what happens to one request: before it
is processed (nothing changes on the router) or after (a write takes effect and only the reply
is lost or replaced, so the client cannot tell which happened).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sync_job.testing.emulator import (
    ALL_METHODS,
    WRITE_METHODS,
    Crash,
    DelayReply,
    DropConnection,
    Reply,
    RouterOSEmulator,
    error_body,
)


@dataclass(frozen=True, slots=True)
class Fault:
    """What happens to one request; build one with the class methods.

    `applied=False` faults act before the request is processed (nothing changes on the
    router); `applied=True` faults let it run first, so a write takes effect and only the reply
    is lost or replaced: the client cannot tell which of the two happened.
    """

    status: int | None = None
    detail: str | None = None
    drop: bool = False
    delay: float = 0.0
    crash: bool = False
    applied: bool = False

    @classmethod
    def error(cls, status: int, detail: str | None = None, *, applied: bool = False) -> Fault:
        """Reply `status` with RouterOS's error envelope (and `detail` when given)."""
        return cls(status=status, detail=detail, applied=applied)

    @classmethod
    def session_closed(cls, *, applied: bool = True) -> Fault:
        """RouterOS's 60 s limit: `400 {"detail":"Session closed"}`; by default it ran anyway."""
        return cls(status=400, detail="Session closed", applied=applied)

    @classmethod
    def dropped_before(cls) -> Fault:
        """The connection closes before the request reached the router: nothing happened."""
        return cls(drop=True)

    @classmethod
    def dropped_after(cls) -> Fault:
        """The request ran (a write took effect), then the connection closed without a reply."""
        return cls(drop=True, applied=True)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """The request runs at once; its reply comes `seconds` late (past a client timeout)."""
        return cls(delay=seconds, applied=True)

    @classmethod
    def crashed(cls) -> Fault:
        """The request ran, then the client process was killed before it saw the reply."""
        return cls(crash=True, applied=True)

    def describe(self) -> str:
        if self.crash:
            return "crash"
        if self.drop:
            return "drop after" if self.applied else "drop before"
        if self.delay:
            return f"delay {self.delay}s"
        text = f"{self.status}" + (f" {self.detail}" if self.detail else "")
        return text + (" (applied)" if self.applied else "")


@dataclass(slots=True)
class _Rule:
    fault: Fault | None  # None: drawn from `choices` with `rng`
    methods: frozenset[str]
    nth: int | None = None  # fire on the nth matching request (or write), once
    per_write: bool = False  # count writes that took effect instead of requests
    fraction: float = 0.0
    rng: random.Random | None = None
    choices: tuple[Fault, ...] = ()
    seen: int = 0


@dataclass(frozen=True, slots=True)
class Injected:
    """One fault that fired: the request's 1-based number (of all requests `Faults` saw), the
    write's number when it was a counted write (else 0), the request and the fault."""

    request: int
    write: int
    method: str
    path: str
    fault: str


@dataclass(eq=False)
class Faults:
    """Switchable fault modes on one emulator, built on its hooks.

    Requests are numbered from 1 in the order the emulator received them since this `Faults`
    was created, whenever a rule is added; with `methods` a rule counts only requests of those
    methods (e.g. `WRITE_METHODS`: "the Nth write request"). Writes (`on_write`,
    `drop_after_write`, `crash_after_write`) are numbered from 1 among the requests that changed
    state. A rule for a number already passed is refused. The first rule that fires decides a
    request's fate; every firing is logged in `injected`. `fail_fraction` draws from its own
    `random.Random(seed)` for every request it counts, so a given sequence of requests always
    meets the same faults.
    """

    emulator: RouterOSEmulator
    injected: list[Injected] = field(default_factory=list)
    requests_seen: int = 0
    writes_seen: int = 0
    _by_method: Counter[str] = field(default_factory=Counter)
    _rules: list[_Rule] = field(default_factory=list)
    _pending: tuple[Fault, int] | None = None

    def __post_init__(self) -> None:
        self.emulator.before_request.append(self._before)
        self.emulator.after_write.append(self._after_write)
        self.emulator.after_request.append(self._after)

    # -- switching faults on --------------------------------------------------------------------

    def on_request(self, n: int, fault: Fault, *, methods: Collection[str] = ALL_METHODS) -> Faults:
        """`fault` for the `n`th request of `methods` (1-based)."""
        if n < 1:
            raise ValueError("requests are numbered from 1")
        return self._add(_Rule(fault, _methods(methods), nth=n))

    def on_write(self, n: int, fault: Fault) -> Faults:
        """`fault` (an applied one) right after the `n`th write that changed state (1-based)."""
        if n < 1 or not fault.applied:
            raise ValueError("writes are numbered from 1 and only applied faults follow them")
        return self._add(_Rule(fault, WRITE_METHODS, nth=n, per_write=True))

    def fail_nth(
        self,
        n: int,
        status: int,
        detail: str | None = None,
        *,
        methods: Collection[str] = ALL_METHODS,
        applied: bool = False,
    ) -> Faults:
        """Reply `status` (and a RouterOS `detail`) to the `n`th request of `methods`."""
        return self.on_request(n, Fault.error(status, detail, applied=applied), methods=methods)

    def fail_fraction(
        self,
        p: float,
        seed: int,
        choices: Sequence[int | Fault] = (500, 503),
        *,
        methods: Collection[str] = ALL_METHODS,
    ) -> Faults:
        """Each request of `methods` fails with probability `p`, as one of `choices` (a status or
        a `Fault`), both drawn from `random.Random(seed)`."""
        if not 0.0 <= p <= 1.0 or not choices:
            raise ValueError("p must be in [0, 1] and choices non-empty")
        faults = tuple(c if isinstance(c, Fault) else Fault.error(c) for c in choices)
        rule = _Rule(None, _methods(methods), fraction=p, rng=random.Random(seed), choices=faults)
        return self._add(rule)

    def delay_nth(
        self, n: int, seconds: float, *, methods: Collection[str] = ALL_METHODS
    ) -> Faults:
        """Process the `n`th request of `methods` at once but reply `seconds` late."""
        return self.on_request(n, Fault.slow(seconds), methods=methods)

    def drop_before(self, n: int, *, methods: Collection[str] = ALL_METHODS) -> Faults:
        """Close the connection of the `n`th request of `methods` before it is processed."""
        return self.on_request(n, Fault.dropped_before(), methods=methods)

    def drop_after_write(self, n: int) -> Faults:
        """Let the `n`th write take effect, then close the connection without a reply."""
        return self.on_write(n, Fault.dropped_after())

    def session_closed(
        self, n: int, *, methods: Collection[str] = WRITE_METHODS, applied: bool = True
    ) -> Faults:
        """RouterOS's `400 Session closed` for the `n`th request of `methods`; by default the
        request ran anyway (the limit is on the reply, not on the command)."""
        return self.on_request(n, Fault.session_closed(applied=applied), methods=methods)

    def crash_after_write(self, n: int) -> Faults:
        """Let the `n`th write take effect, then raise `Crash` in the client (in-process)."""
        return self.on_write(n, Fault.crashed())

    def clear(self) -> None:
        """Switch every fault off (the log and the counters stay)."""
        with self.emulator.locked():
            self._rules.clear()
            self._pending = None

    # -- the hooks ------------------------------------------------------------------------------

    def _add(self, rule: _Rule) -> Faults:
        with self.emulator.locked():
            if rule.per_write:
                rule.seen = self.writes_seen
            else:
                rule.seen = sum(self._by_method[method] for method in rule.methods)
            if rule.nth is not None and rule.nth <= rule.seen:
                raise ValueError(f"request or write {rule.nth} has already happened")
            self._rules.append(rule)
        return self

    def _before(self, method: str, path: str) -> Reply | None:
        self.requests_seen += 1
        self._by_method[method] += 1
        self._pending = None
        chosen: Fault | None = None
        for rule in self._rules:
            if rule.per_write or method not in rule.methods:
                continue
            rule.seen += 1
            fault = self._draw(rule)
            if chosen is None and fault is not None:
                chosen = fault
        if chosen is None:
            return None
        if chosen.applied:
            self._pending = chosen, 0
            return None
        return self._fire(chosen, method, path, 0)

    def _after_write(self, method: str, path: str) -> Reply | None:
        self.writes_seen += 1
        for rule in self._rules:
            if rule.per_write:
                rule.seen += 1
                fault = self._draw(rule)
                if fault is not None and self._pending is None:
                    self._pending = fault, self.writes_seen
        if self._pending is not None and not self._pending[1]:
            self._pending = self._pending[0], self.writes_seen
        return None

    def _after(self, method: str, path: str) -> Reply | None:
        if self._pending is None:
            return None
        fault, write = self._pending
        self._pending = None
        return self._fire(fault, method, path, write)

    @staticmethod
    def _draw(rule: _Rule) -> Fault | None:
        if rule.nth is not None:
            return rule.fault if rule.seen == rule.nth else None
        assert rule.rng is not None
        hit = rule.rng.random() < rule.fraction
        pick = rule.rng.choice(rule.choices)  # drawn every time: the stream never depends on hits
        return pick if hit else None

    def _fire(self, fault: Fault, method: str, path: str, write: int) -> Reply:
        self.injected.append(Injected(self.requests_seen, write, method, path, fault.describe()))
        if fault.crash:
            raise Crash(f"killed after write {write} ({method} {path})")
        if fault.drop:
            raise DropConnection(f"{method} {path}")
        if fault.delay:
            raise DelayReply(fault.delay)
        assert fault.status is not None
        return fault.status, error_body(fault.status, fault.detail)


def _methods(methods: Collection[str]) -> frozenset[str]:
    chosen = frozenset(m.upper() for m in methods)
    if not chosen <= ALL_METHODS:
        raise ValueError(f"unknown methods {sorted(chosen - ALL_METHODS)}")
    return chosen
