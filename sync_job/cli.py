"""The `router-policy-sync` command: flags (each with an env twin), exit codes, output streams.

Exit codes: 0 success; 1 any failure, including a policy that is not Synced; 2 drift under
`--check`; 64 usage or configuration error (never 2, so CI can tell drift from a typo).
The plan goes to stdout, logs to stderr. This module only turns flags into `JobSettings`; the
pipeline is imported once, when a command runs (`sync_job.job`), so `--help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Annotated, NoReturn

import typer

from sync_job import __version__
from sync_job.settings import JobSettings, LockSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 64


def _usage_error_class() -> type[Exception]:
    """The usage-error class typer raises. typer vendors click (typer >= 0.29) and keeps it in a
    private module, so this is the one place that names it; an older typer raises click's."""
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found: type[Exception] = importlib.import_module(module).UsageError
        except (ImportError, AttributeError):
            continue
        return found
    raise RuntimeError("typer no longer has a UsageError class: update sync_job.cli")


def _job() -> ModuleType:
    """The pipeline, imported only when a command runs, so `--help` stays fast."""
    from sync_job import job

    return job


app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Keep a MikroTik router's firewall in step with annotated Cilium clusterwide policies.",
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class PlanFormat(StrEnum):
    """`sync --output`: the log format's two, plus Markdown for a pull-request comment."""

    text = "text"
    json = "json"
    markdown = "markdown"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _version_callback(value: bool) -> None:
    if value:
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
    typer.echo(__version__)


def _input_file(value: str | None) -> str | None:
    """`--from-file`: an existing file, or `-` for standard input (a usage error otherwise)."""
    if value is None or value == "-":
        return value
    path = Path(value)
    if not path.exists():
        raise typer.BadParameter(f"file {value!r} does not exist.")
    if path.is_dir():
        raise typer.BadParameter(f"file {value!r} is a directory.")
    return value


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
        PlanFormat,
        typer.Option(
            "--output",
            "-o",
            envvar="SYNC_OUTPUT",
            help="Plan format on stdout (markdown: for a pull-request comment).",
        ),
    ] = PlanFormat.text,
    from_file: Annotated[
        str | None,  # not Path: typer 0.29 checks a Path "-" for existence despite allow_dash
        typer.Option(
            "--from-file",
            envvar="SYNC_FROM_FILE",
            callback=_input_file,
            help="Read policies, Services and Pods from this YAML ('-': standard input) instead "
            "of the API server; RouterPolicy objects are not written (their would-be status is "
            "printed).",
        ),
    ] = None,
    policies_from: Annotated[
        list[str] | None,
        typer.Option(
            "--policies-from",
            envvar="POLICIES_FROM",
            help="With --check only: the CiliumClusterwideNetworkPolicy and CiliumCIDRGroup "
            "documents of this YAML file, directory (read recursively) or '-' (standard input) "
            "replace the cluster's; repeatable. Shows what merging a pull request would do.",
        ),
    ] = None,
    allow_mass_removal: Annotated[
        bool,
        typer.Option(
            "--allow-mass-removal",
            envvar="ALLOW_MASS_REMOVAL",
            help="Let this run remove more than half of the policies that own router objects "
            "(held back otherwise, exit 1).",
        ),
    ] = False,
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
    mikrotik_allow_plain_http: Annotated[
        bool,
        typer.Option(
            "--mikrotik-allow-plain-http",
            envvar="MIKROTIK_ALLOW_PLAIN_HTTP",
            help="Allow an http:// router URL (the password and firewall travel unencrypted).",
        ),
    ] = False,
    mikrotik_cert_sha256: Annotated[
        str | None,
        typer.Option(
            "--mikrotik-cert-sha256",
            envvar="MIKROTIK_CERT_SHA256",
            help="Pin the router's certificate by its SHA-256 fingerprint (AA:BB:... or hex); "
            "then chain and hostname are not checked, the fingerprint is.",
        ),
    ] = None,
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
            help="Source ranges that are never allowed (repeatable; added to the default list).",
        ),
    ] = None,
    no_default_reserved: Annotated[
        bool,
        typer.Option(
            "--no-default-reserved",
            envvar="NO_DEFAULT_RESERVED",
            help="Drop the default reserved ranges (only --reserved-cidr ones apply).",
        ),
    ] = False,
    allow_source_ranges: Annotated[
        bool,
        typer.Option(
            "--allow-source-ranges",
            envvar="ALLOW_SOURCE_RANGES",
            help="Let a source be any IPv4 prefix up to /8 (an address-list entry per prefix), "
            "not only a single address (/32).",
        ),
    ] = False,
    ip_families: Annotated[
        str,
        typer.Option(
            "--ip-families",
            envvar="IP_FAMILIES",
            help="The IP families synced: ipv4, ipv6 or ipv4,ipv6. IPv6 sources go to "
            "/ipv6/firewall address lists and filter rules above its own marker.",
        ),
    ] = "ipv4",
    max_sources_per_policy: Annotated[
        int,
        typer.Option(
            "--max-sources-per-policy",
            envvar="MAX_SOURCES_PER_POLICY",
            min=1,
            help="A policy with more sources (address-list entries) is ValidationFailed.",
        ),
    ] = 1_000,
    max_ports_per_policy: Annotated[
        int,
        typer.Option(
            "--max-ports-per-policy",
            envvar="MAX_PORTS_PER_POLICY",
            min=1,
            help="A policy whose gateway Service has more ports is ValidationFailed.",
        ),
    ] = 50,
    max_router_objects: Annotated[
        int,
        typer.Option(
            "--max-router-objects",
            envvar="MAX_ROUTER_OBJECTS",
            min=1,
            help="Owned router objects in all; a policy that would exceed it (policies in name "
            "order) is ValidationFailed.",
        ),
    ] = 20_000,
    wan_interface_list: Annotated[
        str | None,
        typer.Option(
            "--wan-interface-list",
            envvar="WAN_INTERFACE_LIST",
            help="Scope every owned rule to traffic arriving on this RouterOS interface list "
            "(e.g. WAN); filter rules also match only dst-NATed traffic to the gateway.",
        ),
    ] = None,
    gateway_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--gateway-cidr",
            envvar="GATEWAY_CIDRS",
            help="Ranges a gateway (LoadBalancer) address must be in (repeatable; default any "
            "routable address).",
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
            help="Seconds after which an unreleased Lease counts as expired and is taken over; "
            "must exceed the router deadline (120 s) plus 60 s.",
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
    settings = JobSettings(
        check=check,
        output=output.value,
        from_file=None if from_file is None else Path(from_file),
        kubeconfig=kubeconfig,
        router_url=mikrotik_base_url,
        router_username=mikrotik_username,
        router_password=password,
        router_ca_file=mikrotik_ca_file,
        router_insecure_skip_verify=mikrotik_insecure_skip_verify,
        router_allow_plain_http=mikrotik_allow_plain_http,
        router_cert_sha256=mikrotik_cert_sha256 or None,
        router_timeout=mikrotik_timeout,
        comment_prefix=comment_prefix,
        reserved_cidrs=tuple(reserved_cidr or ()),
        no_default_reserved=no_default_reserved,
        allow_source_ranges=allow_source_ranges,
        ip_families=ip_families,
        max_sources_per_policy=max_sources_per_policy,
        max_ports_per_policy=max_ports_per_policy,
        max_router_objects=max_router_objects,
        cluster_name=cluster_name,
        wan_interface_list=wan_interface_list or None,
        gateway_cidrs=tuple(gateway_cidr or ()),
        status_refresh=status_refresh,
        log_level=log_level.value,
        log_format=log_format.value,
        lock=LockSettings(
            enabled=lease and not check,
            namespace=lease_namespace,
            name=lease_name,
            holder=lease_holder or f"{socket.gethostname()}-{os.getpid()}",
            wait=lease_wait,
            duration=lease_duration,
        ),
        pushgateway_url=pushgateway_url,
        metrics_file=metrics_file,
        allow_mass_removal=allow_mass_removal,
        policies_from=tuple(policies_from or ()),
    )
    raise typer.Exit(_job().run_job(settings))


@app.command()
def demo(
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", envvar="SYNC_OUTPUT", help="Plan format on stdout."),
    ] = OutputFormat.text,
) -> None:
    """Run the whole pass on a bundled example against an in-process RouterOS emulator."""
    raise typer.Exit(_job().run_demo(output.value))


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: maps click's usage errors (exit 2) to 64, since 2 means drift; any other
    exception is logged (redacted) and exits 1."""
    usage_error = _usage_error_class()
    try:
        result = app(args=argv, standalone_mode=False)
    except usage_error as error:
        error.show()  # type: ignore[attr-defined]
        sys.exit(EXIT_USAGE)
    except typer.Exit as error:
        sys.exit(error.exit_code)
    except typer.Abort:
        sys.exit(EXIT_FAILED)
    except Exception:
        _job().log_unexpected()  # through the redacting logger, never a bare traceback
        sys.exit(EXIT_FAILED)
    sys.exit(result if isinstance(result, int) else EXIT_OK)
