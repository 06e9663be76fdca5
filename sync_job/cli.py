"""The `router-policy-sync` command: flags (each with an env twin), exit codes, output streams.

Exit codes: 0 success; 1 any failure, including a policy that is not Synced; 2 drift under
`--check`; 64 usage or configuration error (never 2, so CI can tell drift from a typo).
The plan goes to stdout, logs to stderr. Heavy imports happen inside the commands so that
`--help` stays fast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

# typer vendors click, so usage errors are its own class, not click's.
from typer._click.exceptions import UsageError

if TYPE_CHECKING:
    from sync_job.cluster import ClusterSnapshot
    from sync_job.kube import KubeClient
    from sync_job.lease import LeaseLock
    from sync_job.routeros import RouterReader
    from sync_job.run import RunReport, SyncSettings

EXIT_OK, EXIT_FAILED, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2, 64

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Keep a MikroTik router's firewall in step with annotated Cilium clusterwide policies.",
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _version_callback(value: bool) -> None:
    if value:
        from sync_job import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_version_callback,
        ),
    ] = False,
) -> None:
    """Keep a MikroTik router's firewall in step with annotated Cilium clusterwide policies."""


@app.command()
def version() -> None:
    """Print the package version."""
    from sync_job import __version__

    typer.echo(__version__)


def _usage(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _password(password: str | None, password_file: Path | None) -> str:
    if password is not None and password_file is not None:
        _usage("give --mikrotik-password or --mikrotik-password-file, not both")
    if password_file is not None:
        try:
            return password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            _usage(f"cannot read --mikrotik-password-file {password_file}: {error.strerror}")
    if password is None:
        _usage("the router password is required: --mikrotik-password-file (or MIKROTIK_PASSWORD)")
    return password


def _exit_code(report: RunReport, check: bool) -> int:
    if report.failed:
        return EXIT_FAILED
    if check and report.drift:
        return EXIT_DRIFT
    return EXIT_OK


@app.command()
def sync(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            envvar="SYNC_CHECK",
            help="Read only: print the plan, write nothing anywhere; exit 2 on drift.",
        ),
    ] = False,
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", envvar="SYNC_OUTPUT", help="Plan format on stdout."),
    ] = OutputFormat.text,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            envvar="SYNC_FROM_FILE",
            exists=True,
            dir_okay=False,
            help="Read policies, Services and Pods from this YAML instead of the API server; "
            "RouterPolicy objects are not written (their would-be status is printed).",
        ),
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            envvar="KUBECONFIG",
            help="Kubeconfig file; empty means the in-cluster service account.",
        ),
    ] = None,
    mikrotik_base_url: Annotated[
        str | None,
        typer.Option(
            "--mikrotik-base-url",
            envvar="MIKROTIK_BASE_URL",
            help="RouterOS REST base URL, e.g. https://192.168.88.1/rest",
        ),
    ] = None,
    mikrotik_username: Annotated[
        str, typer.Option("--mikrotik-username", envvar="MIKROTIK_USERNAME", help="Router user.")
    ] = "admin",
    mikrotik_password: Annotated[
        str | None,
        typer.Option(
            "--mikrotik-password",
            envvar="MIKROTIK_PASSWORD",
            show_default=False,
            help="Router password (prefer --mikrotik-password-file).",
        ),
    ] = None,
    mikrotik_password_file: Annotated[
        Path | None,
        typer.Option(
            "--mikrotik-password-file",
            envvar="MIKROTIK_PASSWORD_FILE",
            help="File holding the router password (e.g. a mounted Secret).",
        ),
    ] = None,
    mikrotik_ca_file: Annotated[
        Path | None,
        typer.Option(
            "--mikrotik-ca-file",
            envvar="MIKROTIK_CA_FILE",
            exists=True,
            dir_okay=False,
            help="CA bundle that signed the router's certificate.",
        ),
    ] = None,
    mikrotik_insecure_skip_verify: Annotated[
        bool,
        typer.Option(
            "--mikrotik-insecure-skip-verify",
            envvar="MIKROTIK_INSECURE_SKIP_VERIFY",
            help="Do not verify the router's TLS certificate (logged).",
        ),
    ] = False,
    mikrotik_timeout: Annotated[
        float,
        typer.Option(
            "--mikrotik-timeout",
            envvar="MIKROTIK_TIMEOUT",
            min=0.1,
            help="Seconds to wait for each router request.",
        ),
    ] = 10.0,
    comment_prefix: Annotated[
        str,
        typer.Option(
            "--comment-prefix",
            envvar="COMMENT_PREFIX",
            help="Prefix of every router object this tool owns (one per cluster sharing a router).",
        ),
    ] = "router-policy-sync",
    reserved_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--reserved-cidr",
            envvar="RESERVED_CIDRS",
            help="Source ranges that are never allowed (repeatable; replaces the default list).",
        ),
    ] = None,
    cluster_name: Annotated[
        str,
        typer.Option(
            "--cilium-cluster-name",
            envvar="CILIUM_CLUSTER_NAME",
            help="Value of the io.cilium.k8s.policy.cluster label selectors may match.",
        ),
    ] = "default",
    status_refresh: Annotated[
        float,
        typer.Option(
            "--status-refresh",
            envvar="STATUS_REFRESH",
            min=0,
            help="An unchanged RouterPolicy status is rewritten (its lastReconciledTime) after "
            "1 to 2 times this many seconds, fixed per policy; changed ones always are.",
        ),
    ] = 3600.0,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", envvar="LOG_LEVEL", help="Log verbosity on stderr.")
    ] = LogLevel.info,
    log_format: Annotated[
        OutputFormat,
        typer.Option("--log-format", envvar="LOG_FORMAT", help="Log format on stderr."),
    ] = OutputFormat.text,
    lease: Annotated[
        bool,
        typer.Option(
            "--lease/--no-lease",
            envvar="LEASE",
            help="Hold a Lease while writing, so a manual and a scheduled run never overlap.",
        ),
    ] = True,
    lease_namespace: Annotated[
        str,
        typer.Option("--lease-namespace", envvar="LEASE_NAMESPACE", help="Namespace of the Lease."),
    ] = "router-policy-sync",
    lease_name: Annotated[
        str, typer.Option("--lease-name", envvar="LEASE_NAME", help="Name of the Lease.")
    ] = "router-policy-sync",
    lease_holder: Annotated[
        str | None,
        typer.Option(
            "--lease-holder", envvar="LEASE_HOLDER", help="Holder identity (default: host-pid)."
        ),
    ] = None,
    lease_wait: Annotated[
        float,
        typer.Option(
            "--lease-wait",
            envvar="LEASE_WAIT",
            min=0,
            help="Seconds to wait for a live holder before giving up (exit 1).",
        ),
    ] = 60.0,
    lease_duration: Annotated[
        int,
        typer.Option(
            "--lease-duration",
            envvar="LEASE_DURATION",
            min=10,
            help="Seconds after which an unreleased Lease counts as expired and is taken over.",
        ),
    ] = 300,
    pushgateway_url: Annotated[
        str | None,
        typer.Option(
            "--pushgateway-url",
            envvar="PUSHGATEWAY_URL",
            help="Push run metrics to this Prometheus Pushgateway.",
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            envvar="METRICS_FILE",
            help="Write run metrics here (node-exporter textfile format).",
        ),
    ] = None,
) -> None:
    """Run one pass: read, plan, apply (unless --check) and write each RouterPolicy's status."""
    password = _password(mikrotik_password, mikrotik_password_file)
    from sync_job import logs

    logs.configure(
        log_level.value, log_format.value, secrets=_secret_forms(mikrotik_username, password)
    )
    if not mikrotik_base_url:
        _usage("--mikrotik-base-url (or MIKROTIK_BASE_URL) is required")
    if not mikrotik_base_url.startswith(("http://", "https://")):
        _usage(f"--mikrotik-base-url {mikrotik_base_url!r} must start with https:// or http://")
    settings = _sync_settings(comment_prefix, reserved_cidr, cluster_name, status_refresh)
    from sync_job.routeros import RouterReader, RouterSettings, RouterWriter, make_http_client

    router_settings = RouterSettings(
        mikrotik_base_url,
        mikrotik_username,
        password,
        str(mikrotik_ca_file) if mikrotik_ca_file else None,
        mikrotik_insecure_skip_verify,
        mikrotik_timeout,
    )
    lock = LockSettings(
        lease and not check and from_file is None,
        lease_namespace,
        lease_name,
        lease_holder or _default_holder(),
        lease_wait,
        lease_duration,
    )
    started = time.monotonic()
    with make_http_client(router_settings) as http:
        router = (RouterReader if check else RouterWriter)(http, router_settings)
        code, report = _run(
            router, settings, from_file, kubeconfig, lock, check=check, output=output
        )
    if (pushgateway_url or metrics_file) and not check:  # --check writes nothing anywhere
        _write_metrics(
            report, code, time.monotonic() - started, router, pushgateway_url, metrics_file
        )
    raise typer.Exit(code)


@dataclass(frozen=True)
class LockSettings:
    enabled: bool
    namespace: str
    name: str
    holder: str
    wait: float
    duration: int


def _default_holder() -> str:
    import os
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def _write_metrics(
    report: RunReport | None,
    code: int,
    duration: float,
    router: RouterReader,
    pushgateway_url: str | None,
    metrics_file: Path | None,
) -> None:
    from sync_job import metrics

    last = metrics.previous_last_success(metrics_file) if metrics_file else None
    text = metrics.exposition(
        report,
        success=code in (EXIT_OK, EXIT_DRIFT),
        finished=time.time(),
        duration=duration,
        router_requests=router.requests,
        last_success=last,
    )
    if metrics_file:
        metrics.write_textfile(metrics_file, text)
    if pushgateway_url:
        metrics.push(pushgateway_url, text)


def _secret_forms(username: str, password: str) -> list[str]:
    import base64

    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return [password, basic] if password else []


def _sync_settings(
    prefix: str, reserved: list[str] | None, cluster_name: str, status_refresh: float
) -> SyncSettings:
    import ipaddress
    from datetime import timedelta

    from sync_job.cilium import DEFAULT_RESERVED
    from sync_job.ownership import InvalidPrefix, Ownership
    from sync_job.run import SyncSettings

    try:
        ownership = Ownership(prefix)
    except InvalidPrefix as error:
        _usage(str(error))
    networks = DEFAULT_RESERVED
    if reserved:
        try:
            networks = tuple(ipaddress.IPv4Network(cidr, strict=False) for cidr in reserved)
        except ValueError as error:
            _usage(f"--reserved-cidr: {error}")
    return SyncSettings(ownership, networks, cluster_name, timedelta(seconds=status_refresh))


def _run(
    router: RouterReader,
    settings: SyncSettings,
    from_file: Path | None,
    kubeconfig: str | None,
    lock: LockSettings,
    *,
    check: bool,
    output: OutputFormat,
) -> tuple[int, RunReport | None]:
    import logging
    from datetime import UTC, datetime

    from sync_job import render
    from sync_job.errors import ConfigError, SyncError
    from sync_job.run import run_once

    log = logging.getLogger("sync_job")
    kube: KubeClient | None = None
    read_cluster: Callable[[], ClusterSnapshot]
    held: LeaseLock | None = None
    try:
        if from_file is not None:
            from sync_job.source_file import load_snapshot

            path = from_file
            read_cluster = lambda: load_snapshot(path)  # noqa: E731
        else:
            from sync_job.kube import KubeClient, api_client

            kube = KubeClient(api_client(kubeconfig))
            read_cluster = kube.snapshot
            if lock.enabled:
                from sync_job.lease import LeaseLock

                held = LeaseLock(
                    kube,
                    lock.namespace,
                    lock.name,
                    lock.holder,
                    duration=lock.duration,
                    wait=lock.wait,
                )
                held.acquire()
                router.restart_deadline()  # the wait for the Lease is not the router's time
        report = run_once(
            read_cluster=read_cluster,
            router=router,
            kube=None if check else kube,
            settings=settings,
            check=check,
            now=lambda: datetime.now(UTC),
        )
    except ConfigError as error:
        log.error("%s", error)
        return EXIT_USAGE, None
    except SyncError as error:
        log.error("nothing was written: %s", error)
        return EXIT_FAILED, None
    finally:
        if held is not None:
            held.release()
    formatter = render.to_json if output is OutputFormat.json else render.to_text
    sys.stdout.write(formatter(report, check=check))
    sys.stdout.flush()
    return _exit_code(report, check), report


@app.command()
def demo(
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", envvar="SYNC_OUTPUT", help="Plan format on stdout."),
    ] = OutputFormat.text,
) -> None:
    """Run the whole pass on a bundled example against an in-process RouterOS emulator."""
    from sync_job.demo import run_demo

    raise typer.Exit(run_demo(output.value))


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: maps click's usage errors (exit 2) to 64, since 2 means drift."""
    try:
        result = app(args=argv, standalone_mode=False)
    except UsageError as error:
        error.show()
        sys.exit(EXIT_USAGE)
    except typer.Exit as error:
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(EXIT_FAILED)
    sys.exit(result if isinstance(result, int) else EXIT_OK)
