"""Logging setup: one handler on stderr, text or JSON lines, with secrets redacted.

httpx logs every request at INFO, so its loggers are kept at WARNING unless the level is DEBUG.
Every formatted record (message and traceback alike) passes through the redaction, so a
password can only reach stderr as `***`. In JSON lines the message and traceback are redacted
before they are encoded, and the encoded line once more for each secret's JSON-escaped form
(`"`, `\\` and non-ASCII are escaped by `json.dumps`, so the raw secret would not match it).

A password shorter than `SHORT_SECRET` characters is likely to occur inside ordinary words
("admin", "1234"): it is redacted only where it stands alone (not inside a run of letters and
digits), and `configure` warns that it is short, instead of blanking every common substring.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

_NOISY = ("httpx", "httpcore", "urllib3", "kubernetes")
SHORT_SECRET = 12
MASK = "***"

log = logging.getLogger(__name__)


def _escaped_forms(secret: str) -> set[str]:
    """The secret as it appears inside a JSON string (with and without ASCII escaping) and in
    a Python `repr` (`%r`, tracebacks of containers)."""
    forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {repr(secret)[1:-1], ascii(secret)[1:-1]}
    return forms - {secret}


class _Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        patterns: list[str] = []
        forms = {s for s in secrets if s}
        for secret in sorted(forms | {e for s in forms for e in _escaped_forms(s)}, key=len):
            quoted = re.escape(secret)
            if len(secret) < SHORT_SECRET:
                quoted = rf"(?<![A-Za-z0-9]){quoted}(?![A-Za-z0-9])"
            patterns.insert(0, quoted)  # longest first
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str], as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._redact = _Redactor(secrets)
        self._as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        if not self._as_json:
            return self._redact(super().format(record))
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self._redact(self.formatException(record.exc_info))
        return self._redact(json.dumps(entry))


def configure(level: str = "info", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    secrets = list(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(secrets, fmt == "json"))
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    for name in _NOISY:
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)


def warn_if_short(password: str) -> None:
    if password and len(password) < SHORT_SECRET:
        log.warning(
            "the router password is shorter than %d characters: use a longer one (it is "
            "redacted from logs only where it stands alone, not inside other words)",
            SHORT_SECRET,
        )


def secret_forms(username: str, password: str) -> list[str]:
    """The password and the Basic token made from it: what must never be printed."""
    if not password:
        return []
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return [password, basic]


def url_secrets(url: str | None) -> list[str]:
    """The password of a URL's `user:password@` part, as written and percent-decoded."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    if not password:
        return []
    return [password, unquote(password)]
