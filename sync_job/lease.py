"""A coordination.k8s.io/v1 Lease that lets only one run at a time write.

`concurrencyPolicy: Forbid` does not cover Jobs made with `kubectl create job --from=cronjob/...`,
so a manual run and a scheduled one could otherwise apply at once. A run takes the Lease before
it reads, waits up to a bound while a live holder has it, takes over an expired one, and gives
it back at the end; `renew` writes a fresh renewTime once the reads are done and before the first
write, so a slow read cannot let another run take it over while this one writes. Updates carry
the resourceVersion read, so two runs racing for an expired lease cannot both win. `--check`
takes no lock.

`clock` (the wall time written into the Lease), `monotonic` (the wait's deadline) and `sleep`
are injectable so tests can run a whole wait without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sync_job.errors import SyncError
from sync_job.kubeapi import KubeClient, KubeRequestFailed

log = logging.getLogger(__name__)


class LeaseHeld(SyncError):
    """Another live run holds the lease and did not give it back in time."""


class LeaseLost(SyncError):
    """The lease could not be renewed (another run holds it now): this run must not write."""


def _micro(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class LeaseLock:
    kube: KubeClient
    namespace: str
    name: str
    holder: str
    duration: int = 300
    wait: float = 60.0
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep
    poll: float = 2.0
    monotonic: Callable[[], float] = time.monotonic

    @property
    def _path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def _spec(self, acquired: datetime, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "acquireTime": _micro(acquired),
            "renewTime": _micro(acquired),
            "leaseTransitions": transitions,
        }

    def _holder_alive(self, spec: Mapping[str, Any], now: datetime) -> bool:
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        seconds = spec.get("leaseDurationSeconds") or self.duration
        return (
            bool(spec.get("holderIdentity"))
            and renewed is not None
            and (renewed + timedelta(seconds=int(seconds)) > now)
        )

    def _try(self) -> str | None:
        """Take the lease if free; else describe the live holder."""
        now = self.clock()
        try:
            lease = self.kube.request("GET", f"{self._path}/{self.name}")
        except KubeRequestFailed as error:
            if error.status != 404:
                raise SyncError(
                    f"cannot read Lease {self.namespace}/{self.name}: {error}"
                ) from None
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, 0),
            }
            return self._write("POST", self._path, body)
        spec = lease.get("spec") or {}
        if self._holder_alive(spec, now) and spec.get("holderIdentity") != self.holder:
            return f"held by {spec.get('holderIdentity')} since {spec.get('acquireTime')}"
        if spec.get("holderIdentity"):
            log.warning(
                "taking over Lease %s/%s from %s, which expired",
                self.namespace,
                self.name,
                spec.get("holderIdentity"),
            )
        transitions = int(spec.get("leaseTransitions") or 0) + 1
        body = {**lease, "spec": self._spec(now, transitions)}
        return self._write("PUT", f"{self._path}/{self.name}", body)

    def _write(self, method: str, path: str, body: Mapping[str, Any]) -> str | None:
        try:
            self.kube.request(method, path, body)
        except KubeRequestFailed as error:
            if error.status == 409:  # another run got there first; look again
                return "taken by another run a moment ago"
            raise SyncError(f"cannot take Lease {self.namespace}/{self.name}: {error}") from None
        log.info("took Lease %s/%s as %s", self.namespace, self.name, self.holder)
        return None

    def acquire(self) -> None:
        deadline = self.monotonic() + self.wait
        while True:
            holder = self._try()
            if holder is None:
                return
            if self.monotonic() >= deadline:
                raise LeaseHeld(
                    f"another run holds Lease {self.namespace}/{self.name} ({holder}); waited "
                    f"{self.wait:.0f}s. It is released when that run ends, or taken over once "
                    f"it has not been renewed for {self.duration}s."
                )
            log.info("Lease %s/%s %s; waiting", self.namespace, self.name, holder)
            self.sleep(min(self.poll, max(0.0, deadline - self.monotonic())))

    def renew(self) -> None:
        """Restart the lease's duration from now; LeaseLost if this run no longer holds it."""
        where = f"Lease {self.namespace}/{self.name}"
        try:
            lease = self.kube.request("GET", f"{self._path}/{self.name}")
        except KubeRequestFailed as error:
            raise LeaseLost(f"cannot renew {where}: {error}") from None
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.holder:
            raise LeaseLost(
                f"{where} is now held by {spec.get('holderIdentity')!r}, not {self.holder!r}: "
                f"this run took longer than --lease-duration ({self.duration}s) and must not write"
            )
        renewed = {**lease, "spec": {**spec, "renewTime": _micro(self.clock())}}
        try:
            self.kube.request("PUT", f"{self._path}/{self.name}", renewed)
        except KubeRequestFailed as error:  # 409: another run wrote it since the GET
            raise LeaseLost(f"cannot renew {where}: {error}") from None
        log.info("renewed %s", where)

    def release(self) -> None:
        try:
            lease = self.kube.request("GET", f"{self._path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") != self.holder:
                return
            spec = {**lease["spec"], "holderIdentity": None, "renewTime": None}
            self.kube.request("PUT", f"{self._path}/{self.name}", {**lease, "spec": spec})
        except KubeRequestFailed as error:
            log.warning(
                "could not release Lease %s/%s: %s (it expires on its own)",
                self.namespace,
                self.name,
                error,
            )
            return
        log.info("released Lease %s/%s", self.namespace, self.name)
