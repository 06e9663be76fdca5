"""Hardening of the router connection: plain HTTP only on request, no proxy or CA from the
environment, and a certificate pinned by its SHA-256 fingerprint.

The routers are the emulator on 127.0.0.1, over HTTPS with the certificates of tests/test_tls.py
(`pki`, `https_router`). A pin mismatch must stop the run before any request reaches the router,
so before the credentials are sent.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.router import Router, run_cli
from tests.test_tls import Pki, example, https_router, owned_rows, pki, sync

__all__ = ["example", "https_router", "pki"]  # fixtures used here by name


def fingerprint_of(certificate: Path, *, colons: bool) -> str:
    der = x509.load_pem_x509_certificate(certificate.read_bytes()).public_bytes(Encoding.DER)
    digest = hashlib.sha256(der).hexdigest()
    if not colons:
        return digest
    return ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()


def dead_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- plain HTTP ---------------------------------------------------------------------------------


def test_plain_http_is_refused_without_the_flag(router: Router, example: Path) -> None:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        env={"MIKROTIK_ALLOW_PLAIN_HTTP": "0"},
    )  # fmt: skip
    assert result.code == 64, result.stderr
    assert "--mikrotik-allow-plain-http" in result.stderr
    assert router.emulator.requests == {}  # refused before anything was sent


def test_plain_http_runs_with_the_flag_or_its_env_twin(router: Router, example: Path) -> None:
    flag = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--mikrotik-allow-plain-http", env={"MIKROTIK_ALLOW_PLAIN_HTTP": "0"},
    )  # fmt: skip
    assert flag.code == 0, flag.stderr
    assert "is plain HTTP" in flag.stderr  # still said out loud
    env = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url, "--check",
        env={"MIKROTIK_ALLOW_PLAIN_HTTP": "true"},
    )  # fmt: skip
    assert env.code == 0, env.stderr


def test_a_url_with_credentials_is_shown_without_them(example: Path) -> None:
    url = f"http://admin:url-secret-9d2@127.0.0.1:{dead_port()}/rest"
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", url,
        env={"MIKROTIK_ALLOW_PLAIN_HTTP": "0"},
    )  # fmt: skip
    assert result.code == 64
    assert "url-secret-9d2" not in result.stderr and "127.0.0.1" in result.stderr


# -- the environment is not trusted -------------------------------------------------------------


def test_proxy_variables_are_ignored(router: Router, example: Path) -> None:
    proxy = f"http://127.0.0.1:{dead_port()}"
    env = dict.fromkeys(("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"), proxy)
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--mikrotik-timeout", "2", env={**env, "NO_PROXY": "", "no_proxy": ""},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert owned_rows(router) == 8


def test_ssl_cert_file_of_the_environment_is_not_trusted(
    https_router: Router, example: Path, pki: Pki
) -> None:
    """httpx would load SSL_CERT_FILE when trusting the environment; the router client must
    trust only certifi's bundle or --mikrotik-ca-file."""
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", https_router.url, "--check",
        env={"SSL_CERT_FILE": str(pki.ca_file)},
    )  # fmt: skip
    assert result.code == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert https_router.emulator.requests == {}


# -- the certificate pin ------------------------------------------------------------------------


@pytest.mark.parametrize("https_router", ["self_signed"], indirect=True)
def test_a_pinned_self_signed_certificate_is_trusted(
    https_router: Router, example: Path, pki: Pki
) -> None:
    certificate, _ = pki.self_signed
    pin = fingerprint_of(certificate, colons=True)
    result = sync(https_router, example, "--mikrotik-cert-sha256", pin)
    assert result.code == 0, result.stderr
    assert owned_rows(https_router) == 8
    assert "TLS verification of the router is OFF" not in result.stderr
    # ... and the env twin with plain lowercase hex.
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", https_router.url, "--check",
        env={"MIKROTIK_CERT_SHA256": fingerprint_of(certificate, colons=False)},
    )  # fmt: skip
    assert result.code == 0, result.stderr


@pytest.mark.parametrize("https_router", ["wrong_host"], indirect=True)
def test_with_a_pin_the_hostname_is_not_checked_but_the_fingerprint_is(
    https_router: Router, example: Path, pki: Pki
) -> None:
    certificate, _ = pki.wrong_host  # for 127.0.0.2, served on 127.0.0.1
    result = sync(
        https_router, example, "--check",
        "--mikrotik-cert-sha256", fingerprint_of(certificate, colons=True),
    )  # fmt: skip
    assert result.code == 2, result.stderr  # read fine: drift, nothing applied yet


def test_a_wrong_pin_stops_the_run_before_any_request(
    https_router: Router, example: Path, pki: Pki
) -> None:
    served, _ = pki.router_chain
    other, _ = pki.self_signed
    wrong = fingerprint_of(other, colons=True)
    result = sync(https_router, example, "--mikrotik-cert-sha256", wrong)
    assert result.code == 1
    assert "--mikrotik-cert-sha256" in result.stderr
    assert wrong in result.stderr  # the pin ...
    assert fingerprint_of(served, colons=True) in result.stderr  # ... and what was served
    assert "nothing was written" in result.stderr
    assert https_router.emulator.requests == {}  # no request, so no credentials, was sent
    assert owned_rows(https_router) == 0


def test_a_pin_is_checked_on_every_connection(https_router: Router, pki: Pki) -> None:
    """In-process: a pinned client refuses a server whose certificate is not the pin, while
    the same client settings with the right pin connect (no reuse of a checked connection)."""
    from sync_job.errors import RouterAuthError
    from sync_job.router.client import (
        RouterReader,
        RouterSettings,
        make_http_client,
        parse_fingerprint,
    )
    from sync_job.router.tables import Table
    from tests.support.router import PASSWORD

    served, _ = pki.router_chain
    good = RouterSettings(
        https_router.url, "admin", PASSWORD,
        cert_sha256=parse_fingerprint(fingerprint_of(served, colons=True)),
    )  # fmt: skip
    with make_http_client(good) as http:
        assert RouterReader(http, good).rows(Table.FILTER)
    bad = RouterSettings(https_router.url, "admin", PASSWORD, cert_sha256="0" * 64)
    with make_http_client(bad) as http, pytest.raises(RouterAuthError) as caught:
        RouterReader(http, bad).rows(Table.FILTER)
    assert "--mikrotik-cert-sha256" in str(caught.value)


@pytest.mark.parametrize("pin", ["zz" * 32, "AB:CD", "0" * 63])
def test_a_malformed_pin_is_a_usage_error(https_router: Router, example: Path, pin: str) -> None:
    result = sync(https_router, example, "--mikrotik-cert-sha256", pin)
    assert result.code == 64
    assert "--mikrotik-cert-sha256" in result.stderr
    assert https_router.emulator.requests == {}


def test_a_pin_with_a_plain_http_url_is_a_usage_error(router: Router, example: Path) -> None:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--mikrotik-cert-sha256", "ab" * 32,
    )  # fmt: skip
    assert result.code == 64
    assert "--mikrotik-cert-sha256 needs an https://" in result.stderr
    assert router.emulator.requests == {}
