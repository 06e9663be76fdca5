"""A throwaway Kubernetes control plane (etcd + kube-apiserver) for end-to-end tests.

This module owns starting and stopping the control plane, envtest-style: it finds the binaries
(``CONTROL_PLANE_BIN_DIR`` or ``build.sh`` next to this file), generates every certificate with
``cryptography``, runs etcd and kube-apiserver on random loopback ports, writes kubeconfigs and
installs CRDs. There is no controller-manager, scheduler or kubelet: no garbage collection, no
namespace deletion, no default ServiceAccounts.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client as k8s
from kubernetes import config as k8s_config

BUILD_SCRIPT = Path(__file__).resolve().with_name("build.sh")
READY_TIMEOUT = 60.0
CRD_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL = 0.1
LOG_TAIL = 30

Key = ec.EllipticCurvePrivateKey

_live: set[subprocess.Popen[bytes]] = set()  # started and not yet reaped: atexit kills them


class ControlPlaneUnavailable(RuntimeError):
    """The binaries cannot be found or built, or the processes do not become ready."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ControlPlane:
    """A running control plane; everything it writes lives under ``base_dir``."""

    base_dir: Path
    server: str
    admin_kubeconfig: Path
    ca_file: Path
    etcd_url: str
    startup_seconds: float = 0.0
    etcd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    apiserver: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def find_binaries() -> Path:
    """Return the directory holding ``etcd`` and ``kube-apiserver``, building them if needed."""
    env_dir = os.environ.get("CONTROL_PLANE_BIN_DIR")
    if env_dir:
        bin_dir = Path(env_dir)
    else:
        try:
            done = subprocess.run(
                [str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, timeout=3600
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ControlPlaneUnavailable(f"{BUILD_SCRIPT} could not run: {exc}") from exc
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-LOG_TAIL:])
            raise ControlPlaneUnavailable(f"{BUILD_SCRIPT} exited {done.returncode}:\n{tail}")
        bin_dir = Path(done.stdout.strip().splitlines()[-1])
    for name in ("etcd", "kube-apiserver"):
        if not os.access(bin_dir / name, os.X_OK):
            raise ControlPlaneUnavailable(f"no executable {name} in {bin_dir}")
    return bin_dir


def start(bin_dir: Path, workdir: Path, crd_paths: Sequence[Path]) -> ControlPlane:
    """Start etcd and kube-apiserver under ``workdir``, install the CRDs, return when usable.

    Raises ControlPlaneUnavailable (with a log tail) if a process dies or is not ready in 60 s;
    a CRD the server rejects, or one not Established in 30 s, raises as itself (a real bug).
    Processes started before a failure are stopped.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pki = _write_pki(workdir / "pki")
    etcd_port, peer_port, api_port = _free_ports(3)
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(
        base_dir=workdir,
        server=server,
        admin_kubeconfig=workdir / "admin.kubeconfig",
        ca_file=pki["ca.crt"],
        etcd_url=f"http://127.0.0.1:{etcd_port}",
    )
    peer = f"http://127.0.0.1:{peer_port}"
    # fmt: off
    etcd_args = [
        "--name=test", f"--data-dir={workdir / 'etcd'}", "--unsafe-no-fsync=true",
        f"--listen-client-urls={plane.etcd_url}", f"--advertise-client-urls={plane.etcd_url}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=test={peer}",
    ]
    apiserver_args = [
        f"--etcd-servers={plane.etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
        f"--tls-cert-file={pki['apiserver.crt']}", f"--tls-private-key-file={pki['apiserver.key']}",
        f"--client-ca-file={pki['client-ca.crt']}", "--authorization-mode=RBAC",
        f"--service-account-issuer={server}", f"--service-account-signing-key-file={pki['sa.key']}",
        f"--service-account-key-file={pki['sa.pub']}",
        "--service-cluster-ip-range=10.0.0.0/24", "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
    ]
    # fmt: on
    tls = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    tls.load_cert_chain(pki["admin.crt"], pki["admin.key"])
    etcd_log, apiserver_log = workdir / "etcd.log", workdir / "kube-apiserver.log"
    began = time.monotonic()
    try:
        plane.etcd = _spawn([str(bin_dir / "etcd"), *etcd_args], etcd_log)
        _wait(plane.etcd, etcd_log, f"{plane.etcd_url}/health")
        plane.apiserver = _spawn([str(bin_dir / "kube-apiserver"), *apiserver_args], apiserver_log)
        _wait(plane.apiserver, apiserver_log, f"{server}/readyz", tls)
        _wait(plane.apiserver, apiserver_log, f"{server}/api/v1/namespaces/default", tls)
        admin = {
            "client-certificate-data": _b64(pki["admin.crt"]),
            "client-key-data": _b64(pki["admin.key"]),
        }
        _write_kubeconfig(plane.admin_kubeconfig, server, pki["ca.crt"], admin)
        _install_crds(plane.admin_kubeconfig, crd_paths)
    except BaseException:
        stop(plane)
        raise
    plane.startup_seconds = time.monotonic() - began
    return plane


def stop(plane: ControlPlane) -> None:
    """Stop kube-apiserver, then etcd (SIGTERM, then SIGKILL after 10 s); drop etcd's data."""
    for proc in (plane.apiserver, plane.etcd):
        if proc is not None:
            _terminate(proc)
    plane.apiserver = plane.etcd = None
    shutil.rmtree(plane.base_dir / "etcd", ignore_errors=True)


def api_client_for(kubeconfig: Path) -> k8s.ApiClient:
    """A ``kubernetes`` client for ``kubeconfig``; close it (or use it as a context manager)."""
    api_client: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api_client


def kubeconfig_for_token(plane: ControlPlane, token: str, path: Path) -> Path:
    """Write a kubeconfig for ``plane`` that authenticates only with a bearer ``token``."""
    _write_kubeconfig(path, plane.server, plane.ca_file, {"token": token})
    return path


# --- processes -----------------------------------------------------------------------------------


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: signals reach only this tree
        )
    _live.add(proc)
    return proc


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()
    _live.discard(proc)


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # its own session, so its process group id is its pid


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live):
        _signal(proc, signal.SIGKILL)
        proc.wait()
    _live.clear()


def _wait(
    proc: subprocess.Popen[bytes], log: Path, url: str, tls: ssl.SSLContext | None = None
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``proc`` dies, or after the timeout."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not _ok(url, tls):
        if proc.poll() is not None:
            raise ControlPlaneUnavailable(f"{url}: process exited {proc.returncode}\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise ControlPlaneUnavailable(f"{url}: not ready in {READY_TIMEOUT:.0f}s\n{_tail(log)}")
        time.sleep(POLL)


def _ok(url: str, tls: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=tls) as response:
            return bool(response.status == 200)
    except OSError:  # URLError, HTTPError, refused, reset, timeout
        return False


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return f"--- last {LOG_TAIL} lines of {log} ---\n" + "\n".join(lines[-LOG_TAIL:])


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- CRDs and kubeconfigs ------------------------------------------------------------------------


def _install_crds(kubeconfig: Path, crd_paths: Sequence[Path]) -> None:
    docs = [d for p in crd_paths for d in yaml.safe_load_all(p.read_text()) if d]
    with api_client_for(kubeconfig) as api_client:
        api = k8s.ApiextensionsV1Api(api_client)
        for doc in docs:
            api.create_custom_resource_definition(
                k8s.V1CustomResourceDefinition.model_validate(doc)
            )
        for doc in docs:
            name = doc["metadata"]["name"]
            deadline = time.monotonic() + CRD_TIMEOUT
            while not _established(api.read_custom_resource_definition(name)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"CRD {name} not Established within {CRD_TIMEOUT:.0f}s")
                time.sleep(POLL)


def _established(crd: k8s.V1CustomResourceDefinition) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str]) -> None:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# --- certificates --------------------------------------------------------------------------------


def _write_pki(pki: Path) -> dict[str, Path]:
    """Serving CA + cert, client CA + admin cert (system:masters), service-account key pair."""
    names = ("ca", "client-ca", "apiserver", "admin", "sa")
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in names}
    serving_ca = _certificate(keys["ca"], "control-plane-serving-ca")
    client_ca = _certificate(keys["client-ca"], "control-plane-client-ca")
    server_auth, client_auth = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    api_cert = _certificate(
        keys["apiserver"], "kube-apiserver", (keys["ca"], serving_ca), (), server_auth
    )
    admin_cert = _certificate(
        keys["admin"], "admin", (keys["client-ca"], client_ca), ["system:masters"], client_auth
    )
    pem = serialization.Encoding.PEM
    files = {
        "ca.crt": serving_ca.public_bytes(pem),
        "client-ca.crt": client_ca.public_bytes(pem),
        "apiserver.crt": api_cert.public_bytes(pem),
        "apiserver.key": _key_pem(keys["apiserver"]),
        "admin.crt": admin_cert.public_bytes(pem),
        "admin.key": _key_pem(keys["admin"]),
        "sa.key": _key_pem(keys["sa"]),
        "sa.pub": keys["sa"].public_key().public_bytes(pem, PublicFormat.SubjectPublicKeyInfo),
    }
    pki.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (pki / name).write_bytes(data)
        (pki / name).chmod(0o600)
    return {name: pki / name for name in files}


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    key: Key,
    common_name: str,
    ca: tuple[Key, x509.Certificate] | None = None,
    groups: Sequence[str] = (),
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    """A one-week certificate for ``key``: a self-signed CA when ``ca`` is None, else a leaf."""
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    subject = x509.Name([*names, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer, issuer = (key, subject) if ca is None else (ca[0], ca[1].subject)
    now = dt.datetime.now(dt.UTC)
    is_ca = ca is None
    # fmt: off
    key_usage = x509.KeyUsage(
        digital_signature=True, key_encipherment=False, key_cert_sign=is_ca, crl_sign=is_ca,
        content_commitment=False, data_encipherment=False, key_agreement=False,
        encipher_only=False, decipher_only=False,
    )
    # fmt: on
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())
