"""Security: TLS verification, the CA file, insecure modes said out loud, no password anywhere,
and a `--check` that cannot write.

The router is the emulator served over HTTPS on 127.0.0.1 with certificates each test makes
(`cryptography`): a private CA and a router certificate it signed, or a self-signed router
certificate as RouterOS makes one. Every command run goes through `run_cli`, which fails if the
sentinel password or a traceback ever shows; the runs here are at debug level, and the Basic
credentials (base64) are checked too.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync_job import logs
from sync_job.router.client import RouterReader, RouterWriter
from sync_job.testing.emulator import WRITE_METHODS, RouterOSEmulator
from sync_job.testing.faults import Faults
from tests.support.router import (
    ADDRESS_LIST,
    FILTER,
    NAT,
    PASSWORD,
    Result,
    Router,
    assert_foreign_unchanged,
    run_cli,
    seed_router,
)

EXAMPLE = (files("sync_job") / "examples" / "demo.yaml").read_text()
BASIC = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
PEM = serialization.Encoding.PEM


# -- certificates ------------------------------------------------------------------------------


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        cert.write_bytes(self.cert.public_bytes(PEM))
        key.write_bytes(
            self.key.private_bytes(
                PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert, key


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ips: tuple[str, ...] = (),
    ca: bool = False,
) -> Issued:
    """A certificate for `ips`, signed by `issuer` (self-signed without one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ips:
        san = [x509.IPAddress(ipaddress.IPv4Address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return Issued(key, builder.sign(issuer.key if issuer else key, hashes.SHA256()))


@dataclass
class Pki:
    ca_file: Path  # the private CA
    router_chain: tuple[Path, Path]  # the router's certificate (signed by the CA) and key
    self_signed: tuple[Path, Path]  # a self-signed router certificate and its key
    wrong_host: tuple[Path, Path]  # signed by the CA, but for 127.0.0.2
    other_ca_file: Path  # a CA that signed nothing here


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = issue("router-policy-sync test CA", ca=True)
    other = issue("some other CA", ca=True)
    ca_file, _ = ca.write(directory, "ca")
    other_file, _ = other.write(directory, "other-ca")
    return Pki(
        ca_file=ca_file,
        router_chain=issue("router", issuer=ca, ips=("127.0.0.1",)).write(directory, "router"),
        self_signed=issue("127.0.0.1", ips=("127.0.0.1",)).write(directory, "self-signed"),
        wrong_host=issue("elsewhere", issuer=ca, ips=("127.0.0.2",)).write(directory, "wrong"),
        other_ca_file=other_file,
    )


def server_context(chain: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*chain)
    return context


@pytest.fixture
def https_router(request: pytest.FixtureRequest, pki: Pki) -> Iterator[Router]:
    """The emulator over HTTPS with the certificate named by the test's `cert` parameter."""
    chain = getattr(pki, getattr(request, "param", "router_chain"))
    emulator = RouterOSEmulator("admin", PASSWORD)
    foreign, marker = seed_router(emulator)
    with emulator.serve(ssl_context=server_context(chain)) as url:
        assert url.startswith("https://127.0.0.1:")
        yield Router(emulator, url, foreign, marker)
    assert_foreign_unchanged(emulator, foreign)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE)
    return path


def sync(router: Router, example: Path, *extra: str) -> Result:
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--log-level", "debug", "--mikrotik-timeout", "2", *extra,
    )  # fmt: skip
    assert BASIC not in result.stdout + result.stderr
    return result


def owned_rows(router: Router) -> int:
    return sum(len(router.owned(table)) for table in (FILTER, NAT, ADDRESS_LIST))


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_is_verified_by_default(https_router: Router, example: Path) -> None:
    """The system CAs do not know the router's CA: the run stops before any request is made."""
    result = sync(https_router, example)
    assert result.code == 1
    assert "certificate" in result.stderr and "--mikrotik-ca-file" in result.stderr
    assert "nothing was written" in result.stderr
    assert sum(https_router.emulator.requests.values()) == 0  # not even a GET got through


def test_the_ca_file_makes_a_ca_signed_router_certificate_work(
    https_router: Router, example: Path, pki: Pki
) -> None:
    result = sync(https_router, example, "--mikrotik-ca-file", str(pki.ca_file))
    assert result.code == 0, result.stderr
    assert owned_rows(https_router) == 8
    assert "WARNING" not in result.stderr  # nothing insecure about it
    assert sync(https_router, example, "--check", "--mikrotik-ca-file", str(pki.ca_file)).code == 0


@pytest.mark.parametrize("https_router", ["self_signed"], indirect=True)
def test_the_ca_file_works_with_a_self_signed_router_certificate(
    https_router: Router, example: Path, pki: Pki
) -> None:
    """RouterOS's own `/certificate sign` without a CA: the certificate is its own CA file."""
    certificate, _ = pki.self_signed
    result = sync(https_router, example, "--mikrotik-ca-file", str(certificate))
    assert result.code == 0, result.stderr
    assert owned_rows(https_router) == 8
    # ... and the environment variable twin does the same.
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", https_router.url, "--check",
        env={"MIKROTIK_CA_FILE": str(certificate)},
    )  # fmt: skip
    assert result.code == 0, result.stderr


def test_a_ca_file_that_did_not_sign_the_router_certificate_is_refused(
    https_router: Router, example: Path, pki: Pki
) -> None:
    result = sync(https_router, example, "--mikrotik-ca-file", str(pki.other_ca_file))
    assert result.code == 1 and "--mikrotik-ca-file" in result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert https_router.writes() == 0 and owned_rows(https_router) == 0


@pytest.mark.parametrize("https_router", ["wrong_host"], indirect=True)
def test_a_certificate_for_another_host_is_refused(
    https_router: Router, example: Path, pki: Pki
) -> None:
    result = sync(https_router, example, "--mikrotik-ca-file", str(pki.ca_file))
    assert result.code == 1
    assert "IP address mismatch" in result.stderr or "mismatch" in result.stderr.lower()
    assert "is in the certificate" in result.stderr  # says what to check
    assert owned_rows(https_router) == 0


def test_a_missing_ca_file_fails_clearly_without_a_traceback(
    https_router: Router, example: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    result = sync(https_router, example, "--mikrotik-ca-file", str(missing))
    assert result.code == 64  # a usage error, caught before anything is read
    assert "--mikrotik-ca-file" in result.stderr and "does not exist" in result.stderr
    assert owned_rows(https_router) == 0 and https_router.emulator.requests == {}


def test_a_ca_file_that_is_not_a_certificate_fails_clearly(
    https_router: Router, example: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    result = sync(https_router, example, "--mikrotik-ca-file", str(garbage))
    assert result.code == 1 and "cannot load --mikrotik-ca-file" in result.stderr
    assert owned_rows(https_router) == 0


def test_insecure_skip_verify_is_explicit_and_logged(https_router: Router, example: Path) -> None:
    result = sync(https_router, example, "--mikrotik-insecure-skip-verify")
    assert result.code == 0, result.stderr
    assert "WARNING" in result.stderr and "TLS verification of the router is OFF" in result.stderr
    assert owned_rows(https_router) == 8
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", https_router.url, "--check",
        env={"MIKROTIK_INSECURE_SKIP_VERIFY": "true"},
    )  # fmt: skip
    assert result.code == 0 and "TLS verification of the router is OFF" in result.stderr


def test_https_to_a_plain_http_port_says_what_to_check(example: Path, router: Router) -> None:
    url = router.url.replace("http://", "https://")
    result = run_cli("sync", "--from-file", str(example), "--mikrotik-base-url", url)
    assert result.code == 1
    assert "TLS handshake with the router failed" in result.stderr
    assert "https://" in result.stderr and "www-ssl" in result.stderr
    assert router.writes() == 0


def test_plain_http_logs_a_warning(router: Router, example: Path) -> None:
    result = run_cli("sync", "--from-file", str(example), "--mikrotik-base-url", router.url)
    assert result.code == 0
    assert "WARNING" in result.stderr and "is plain HTTP" in result.stderr
    assert router.url in result.stderr


# -- the password never shows ------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_password_at_debug_level_through_failures(
    router: Router, example: Path, log_format: str
) -> None:
    """Wrong answers, retries, auth failures: nothing the command prints holds the password."""
    faults = Faults(router.emulator)
    faults.fail_nth(1, 503).drop_after_write(2)
    # A router that echoes the password back in an error detail.
    faults.fail_nth(3, 400, f"failure: {PASSWORD}", methods=WRITE_METHODS)
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--log-level", "debug", "--log-format", log_format,
    )  # fmt: skip
    assert result.code == 1 and "retrying" in result.stderr
    assert "***" in result.stderr  # the echoed password was redacted
    assert BASIC not in result.stdout + result.stderr
    result = run_cli(
        "sync", "--from-file", str(example), "--mikrotik-base-url", router.url,
        "--log-level", "debug", "--log-format", log_format, "--output", "json",
        env={"MIKROTIK_PASSWORD": PASSWORD + "-wrong"},
    )  # fmt: skip
    assert result.code == 1 and "username and password" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_log_tracebacks_are_redacted_too(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("debug", log_format, secrets=[PASSWORD, BASIC])
        log = logging.getLogger("sync_job.test")
        try:
            raise RuntimeError(f"boom with {PASSWORD} and Basic {BASIC}")
        except RuntimeError:
            log.exception("failed while using %s", PASSWORD)
        log.debug("Authorization: Basic %s", BASIC)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError" in err  # the traceback was logged ...
    assert PASSWORD not in err and BASIC not in err  # ... redacted
    if log_format == "json":
        assert all(json.loads(line) for line in err.splitlines())


# -- --check cannot write ---------------------------------------------------------------------


def test_the_check_client_has_no_write_methods() -> None:
    writes = ("create", "update", "delete", "move")
    assert all(callable(getattr(RouterWriter, name)) for name in writes)
    assert not [name for name in writes if hasattr(RouterReader, name)]
    reads = ("rows", "find", "get", "read_tables", "restart_deadline", "system_resource",
             "keep_owned", "time_left")  # fmt: skip
    public = [name for name in dir(RouterReader) if not name.startswith("_")]
    assert sorted(public) == sorted(reads)


def test_check_sends_only_gets_even_when_everything_would_change(
    https_router: Router, example: Path, pki: Pki
) -> None:
    ca = ("--mikrotik-ca-file", str(pki.ca_file))
    assert sync(https_router, example, *ca).code == 0
    emulator = https_router.emulator
    rules = {row["comment"]: row[".id"] for row in https_router.owned(FILTER)}
    nat = https_router.owned(NAT)
    # Drift of every kind: a create, an update, a move and a delete would all be needed.
    emulator.handle("DELETE", f"/rest/{ADDRESS_LIST}/{https_router.owned(ADDRESS_LIST)[0]['.id']}",
                    {}, b"", f"Basic {BASIC}")  # fmt: skip
    emulator.handle("PATCH", f"/rest/{NAT}/{nat[0]['.id']}", {}, b'{"to-ports":"1"}',
                    f"Basic {BASIC}")  # fmt: skip
    emulator.handle("POST", f"/rest/{FILTER}/move", {},
                    json.dumps({"numbers": rules["router-policy-sync::my-policy::tcp"]}).encode(),
                    f"Basic {BASIC}")  # fmt: skip
    emulator.seed(NAT, {"chain": "dstnat", "comment": "router-policy-sync::gone::tcp::1"})
    before = {table: emulator.rows(table) for table in (FILTER, NAT, ADDRESS_LIST)}
    emulator.reset_counts()
    text = sync(https_router, example, "--check", *ca)
    assert text.code == 2
    assert "Plan: 1 to create, 1 to update, 1 to move, 1 to delete." in text.stdout
    document = sync(https_router, example, "--check", "--output", "json", *ca)
    assert document.code == 2
    summary = json.loads(document.stdout)["router"]["summary"]
    assert summary == {"create": 1, "update": 1, "move": 1, "delete": 1}
    assert {method for method, _ in emulator.requests} == {"GET"}
    assert sum(emulator.requests.values()) == 6  # one GET per table, per run
    assert {table: emulator.rows(table) for table in before} == before
