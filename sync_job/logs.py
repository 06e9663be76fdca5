"""Logging setup: one handler on stderr, text or JSON lines, with secrets redacted.

httpx logs every request at INFO, so its loggers are kept at WARNING unless the level is DEBUG.
Every formatted record (message and traceback alike) passes through the redaction, so a
password can only reach stderr as `***`.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Iterable

_NOISY = ("httpx", "httpcore", "urllib3", "kubernetes")


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str], as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._as_json = as_json

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def format(self, record: logging.LogRecord) -> str:
        if not self._as_json:
            return self._redact(super().format(record))
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._redact(json.dumps(entry))


def configure(level: str = "info", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(secrets, fmt == "json"))
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in _NOISY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)


def secret_forms(username: str, password: str) -> list[str]:
    """The password and the Basic token made from it: what must never be printed."""
    if not password:
        return []
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return [password, basic]
