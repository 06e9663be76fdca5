"""The errors a pass can stop on, translated at the I/O boundary.

SyncError
├── ConfigError      bad flags or settings (exit 64)
├── SourceError      the cluster (or --from-file) could not be read; nothing was written
├── RouterError      a RouterOS request failed; carries method, path, status and detail
│   ├── RouterAuthError   401/403 or a TLS failure: no later request can succeed either
│   └── RouterUnreachable connection refused, reset or timed out
└── KubeWriteError   a RouterPolicy create, delete or status write failed
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error the command reports without a traceback."""


class ConfigError(SyncError):
    pass


class SourceError(SyncError):
    pass


class RouterError(SyncError):
    def __init__(
        self, method: str, path: str, status: int | None, detail: str, *, ambiguous: bool = False
    ) -> None:
        where = f"{method} {path}"
        super().__init__(f"{where}: {status} {detail}" if status else f"{where}: {detail}")
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        # True when a write may have taken effect although no answer came back.
        self.ambiguous = ambiguous


class RouterAuthError(RouterError):
    pass


class RouterUnreachable(RouterError):
    pass


class KubeWriteError(SyncError):
    pass
