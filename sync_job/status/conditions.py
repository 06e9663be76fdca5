"""RouterPolicy status: the Ready condition a pass writes, and whether it differs from the last one.

Pure: the clock is a parameter. `lastTransitionTime` moves only when Ready flips between True and
False (apimachinery's SetStatusCondition rule); `lastReconciledTime` is refreshed by every write
and is not drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jsonpatch

from sync_job.model import PolicyOutcome, rfc3339


def _ready_condition(status: Mapping[str, Any] | None) -> Mapping[str, Any]:
    for condition in (status or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return {}


def build_status(
    outcome: PolicyOutcome, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The whole status to merge-patch; `gatewayIP: None` (and `gatewayService: None`) removes
    a stale gateway."""
    state = "True" if outcome.ready else "False"
    before = _ready_condition(previous)
    transition = before.get("lastTransitionTime") if before.get("status") == state else None
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": state,
                "reason": outcome.reason.value,
                "message": outcome.message,
                "lastTransitionTime": transition or rfc3339(now),
                "observedGeneration": outcome.generation,
            }
        ],
        "gatewayIP": outcome.gateway_ip,
        "gatewayIPv6": outcome.gateway_ip6,
        # A failed policy keeps its router objects, so they still point at the last gateway.
        "gatewayService": outcome.gateway_service
        or (None if outcome.ready else (previous or {}).get("gatewayService")),
        "observedGeneration": outcome.generation,
        "lastReconciledTime": rfc3339(now),
    }


def _comparable(status: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: value
        for key, value in (status or {}).items()
        if key != "lastReconciledTime" and value is not None
    }


def status_diff(wanted: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """Human-readable JSON-patch operations from `previous` to `wanted`, timestamps aside."""
    patch = jsonpatch.make_patch(_comparable(previous), _comparable(wanted))
    described = []
    for operation in patch:
        value = operation.get("value")
        shown = "" if operation["op"] == "remove" else f" {value!r}"
        described.append(f"{operation['op']} {operation['path']}{shown}")
    return described
