"""Secrets never leak: JSON logs redact before encoding (a password with `"`, `\\` or non-ASCII
is escaped by the encoder, so it was printed in clear), a short password is flagged instead of
blanking common substrings, settings hide it from `repr`, an uncaught exception goes through
the redacting logger and exits 1, and URLs with `user:password@` never show the password."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest

from sync_job import cli, logs
from sync_job.router.client import RouterSettings
from tests.support.router import PASSWORD, Router, run_cli

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()
AWKWARD = ['Quote"and\\slash-long-1', "pässwörd-ünïcode-long", "tab\tand\nnewline-long-x"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def every_form(secret: str) -> list[str]:
    return [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
    ]


@pytest.mark.parametrize("secret", AWKWARD)
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_awkward_passwords_are_redacted_in_every_encoding(
    secret: str, log_format: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.configure("debug", log_format, secrets=logs.secret_forms("admin", secret))
    log = logging.getLogger("sync_job.test")
    log.error("router said: %s", secret)
    log.error("as repr: %r", secret)
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert err.count("***") >= 3
    for form in every_form(secret):
        assert form not in err, form
    if log_format == "json":
        assert [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_a_short_password_is_redacted_where_it_stands_alone_only(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.configure("info", "text", secrets=["abc1"])
    logging.getLogger("sync_job.test").error("pw abc1 in table xabc12 and abc1, done")
    err = capsys.readouterr().err
    assert "pw *** in table xabc12 and ***, done" in err


def test_a_short_password_is_warned_about(router: Router, example: Path) -> None:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url, "--check",
        env={"MIKROTIK_PASSWORD": "short-pw"},
    )  # fmt: skip
    assert "shorter than 12 characters" in result.stderr
    assert "short-pw" not in result.stdout + result.stderr
    long_enough = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url, "--check"
    )
    assert "shorter than" not in long_enough.stderr


def test_settings_hide_the_password_from_repr() -> None:
    settings = RouterSettings("https://127.0.0.1/rest", "admin", PASSWORD)
    assert PASSWORD not in repr(settings) and "admin" in repr(settings)


def test_an_uncaught_exception_is_logged_redacted_and_exits_1(
    example: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    from sync_job import job

    def explode(*args: object) -> object:
        raise RuntimeError(f"a bug holding {PASSWORD}")

    monkeypatch.setattr(job, "_run", explode)
    monkeypatch.setenv("MIKROTIK_PASSWORD", PASSWORD)
    url = f"http://127.0.0.1:{dead_port()}/rest"
    argv = ["sync", "--from-file", str(example), "--mikrotik-base-url", url,
            "--mikrotik-allow-plain-http", "--log-format", "json"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "a bug holding ***" in err
    assert PASSWORD not in err
    json.loads(err.strip().splitlines()[-1])  # through the configured (JSON) handler


def test_an_exception_before_logging_is_set_up_is_redacted_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from sync_job import job

    def explode(*args: object) -> object:
        raise RuntimeError(f"early bug holding {PASSWORD}")

    monkeypatch.setattr(job, "run_job", explode)
    monkeypatch.setenv("MIKROTIK_PASSWORD", PASSWORD)
    logging.getLogger().handlers[:] = []
    with pytest.raises(SystemExit) as exited:
        cli.main(["sync", "--mikrotik-base-url", "https://127.0.0.1/rest"])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "early bug holding ***" in err and PASSWORD not in err


def test_a_router_url_with_credentials_is_shown_without_them(router: Router, example: Path) -> None:
    url = router.url.replace("http://", "http://admin:url-secret-5a1e@")
    result = run_cli("sync", "--from-file", str(example), "--mikrotik-base-url", url, "--check")
    assert "is plain HTTP" in result.stderr
    assert "url-secret-5a1e" not in result.stdout + result.stderr


def test_a_pushgateway_url_with_credentials_is_shown_without_them(
    router: Router, example: Path
) -> None:
    push = f"http://metrics:push-secret-3c9d@127.0.0.1:{dead_port()}"
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--pushgateway-url", push,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "could not push metrics" in result.stderr
    assert "push-secret-3c9d" not in result.stdout + result.stderr
