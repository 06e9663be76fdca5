"""Which router the job writes to: its RouterOS version and board, and whether it is supported.

Read once per run that writes (`/system/resource`), logged, shown in the JSON plan and exported
as a metric. The REST API exists since RouterOS 7.1 (docs/routeros-rest.md), so an older
router is refused before any write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from sync_job.errors import SyncError

log = logging.getLogger(__name__)

MINIMUM = (7, 1)
_VERSION = re.compile(r"^(\d+)\.(\d+)")


class RouterTooOld(SyncError):
    """The router's RouterOS has no REST API (older than 7.1)."""


def check_supported(system: Mapping[str, str]) -> None:
    """Log the router and refuse one older than RouterOS 7.1 (or whose version is unreadable)."""
    version, board = system.get("version", ""), system.get("board-name", "")
    log.info("router: RouterOS %s on %s", version or "(unknown version)", board or "(unknown)")
    found = _VERSION.match(version)
    if found is None or (int(found[1]), int(found[2])) < MINIMUM:
        raise RouterTooOld(
            f"the router reports RouterOS {version!r}: the REST API this job uses needs "
            f"RouterOS {MINIMUM[0]}.{MINIMUM[1]} or later; upgrade the router (nothing was sent)"
        )
