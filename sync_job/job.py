"""One CronJob process: check the settings, build the clients, hold the Lease, run one pass,
print the plan, write the metrics, and say which exit code that makes.

Exit codes: 0 success; 1 any failure, including a policy that is not Synced; 2 drift under
`--check`; 64 usage or configuration error (never 2, so CI can tell drift from a typo).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync_job import logs, markdown, metrics, render
from sync_job.errors import ConfigError, SyncError
from sync_job.kubeapi import KubeClient, api_client
from sync_job.lease import LeaseLock
from sync_job.model import Family
from sync_job.report import RunReport
from sync_job.router.client import (
    RouterReader,
    RouterSettings,
    RouterWriter,
    make_http_client,
    parse_fingerprint,
    safe_url,
)
from sync_job.router.ownership import InvalidPrefix, Ownership
from sync_job.run import SyncSettings, run_once
from sync_job.settings import JobSettings, LockSettings
from sync_job.source.cilium import DEFAULT_RESERVED, DEFAULT_RESERVED6
from sync_job.source.cluster import read_snapshot
from sync_job.source.documents import STDIN, PolicyDocuments, read_documents, replacing
from sync_job.source.file import load_snapshot
from sync_job.source.limits import Limits
from sync_job.source.snapshot import ClusterSnapshot
from sync_job.status.writes import RouterPolicyWriter

EXIT_OK, EXIT_FAILED, EXIT_DRIFT, EXIT_USAGE = 0, 1, 2, 64
# --lease-duration must exceed the router deadline by this much (seconds): the cluster reads
# before the router's first request and the status writes after its last one.
LEASE_MARGIN = 60.0

log = logging.getLogger("sync_job")


class UsageError(Exception):
    """A setting is wrong; the message says which and how."""


def one_pass(
    from_file: Path, router_url: str, password: str, transport: Any, output: str
) -> RunReport:
    """One pass from a file against a router reached through `transport`; the plan printed."""
    settings = RouterSettings(router_url, "admin", password)
    with make_http_client(settings, transport=transport) as http:
        report = run_once(
            read_cluster=lambda: load_snapshot(from_file),
            router=RouterWriter(http, settings),
            kube=None,
            settings=SyncSettings(),
            check=False,
            now=lambda: datetime.now(UTC),
        )
    formatter = render.to_json if output == "json" else render.to_text
    sys.stdout.write(formatter(report, check=False))
    return report


def run_demo(output: str) -> int:
    """`router-policy-sync demo`; the emulator it needs is loaded only for it."""
    from sync_job.demo import run_demo as demo

    return demo(output)


def log_unexpected() -> None:
    """Log the exception being handled through the redacting logger. A run configures it with
    its secrets; before that (or for another command) it is set up with the password the
    environment holds, so even an early traceback prints no password."""
    if not logging.getLogger().handlers:
        password = os.environ.get("MIKROTIK_PASSWORD", "")
        user = os.environ.get("MIKROTIK_USERNAME", "admin")
        logs.configure(secrets=logs.secret_forms(user, password))
    log.exception("unexpected error; nothing more was done")


def exit_code(report: RunReport, check: bool) -> int:
    if report.failed:
        return EXIT_FAILED
    if report.held_back:  # the mass-removal guard; --check says what a run would do: exit 1
        return EXIT_FAILED
    if check and report.drift:
        return EXIT_DRIFT
    return EXIT_OK


def run_job(settings: JobSettings) -> int:
    """The whole process after flag parsing; returns the exit code."""
    logs.configure(
        settings.log_level,
        settings.log_format,
        secrets=[
            *logs.secret_forms(settings.router_username, settings.router_password),
            *logs.url_secrets(settings.router_url),
            *logs.url_secrets(settings.pushgateway_url),
        ],
    )
    logs.warn_if_short(settings.router_password)
    try:
        router_settings = _router_settings(settings)
        sync_settings = _sync_settings(settings)
        _check_lease_duration(settings.lock, router_settings)
        documents = _policy_documents(settings)
    except UsageError as error:
        sys.stderr.write(f"Error: {error}\n")
        return EXIT_USAGE
    started = time.monotonic()
    with make_http_client(router_settings) as http:
        router = (RouterReader if settings.check else _LeasedWriter)(http, router_settings)
        code, report = _run(router, sync_settings, settings, documents)
    if (settings.pushgateway_url or settings.metrics_file) and not settings.check:
        # --check writes nothing anywhere, metrics included
        _write_metrics(report, code, time.monotonic() - started, router, settings)
    return code


def _router_settings(settings: JobSettings) -> RouterSettings:
    url = settings.router_url
    if not url:
        raise UsageError("--mikrotik-base-url (or MIKROTIK_BASE_URL) is required")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--mikrotik-base-url {url!r} must start with https:// or http://")
    shown = safe_url(url)
    if url.startswith("http://") and not settings.router_allow_plain_http:
        raise UsageError(
            f"--mikrotik-base-url {shown} is plain HTTP: the password and firewall would travel "
            "unencrypted; use https:// (see --mikrotik-cert-sha256 for a self-signed router "
            "certificate), or give --mikrotik-allow-plain-http (or MIKROTIK_ALLOW_PLAIN_HTTP=1)"
        )
    pin = None
    if settings.router_cert_sha256:
        try:
            pin = parse_fingerprint(settings.router_cert_sha256)
        except ValueError as error:
            raise UsageError(f"--mikrotik-cert-sha256: {error}") from None
        if url.startswith("http://"):
            raise UsageError("--mikrotik-cert-sha256 needs an https:// --mikrotik-base-url")
    return RouterSettings(
        url,
        settings.router_username,
        settings.router_password,
        ca_file=str(settings.router_ca_file) if settings.router_ca_file else None,
        insecure_skip_verify=settings.router_insecure_skip_verify,
        cert_sha256=pin,
        timeout=settings.router_timeout,
    )


def parse_families(value: str) -> frozenset[Family]:
    """`--ip-families`: `ipv4`, `ipv6` or both, comma-separated (any order, any case)."""
    words = [word.strip().lower() for word in value.split(",") if word.strip()]
    known = {family.value: family for family in Family}
    unknown = [word for word in words if word not in known]
    if unknown or not words:
        raise UsageError(
            f"--ip-families {value!r}: expected ipv4, ipv6 or ipv4,ipv6"
            + (f" ({', '.join(unknown)} is not a family)" if unknown else "")
        )
    return frozenset(known[word] for word in words)


def _sync_settings(settings: JobSettings) -> SyncSettings:
    try:
        ownership = Ownership(settings.comment_prefix)
    except InvalidPrefix as error:
        raise UsageError(str(error)) from None
    try:
        added = tuple(ipaddress.ip_network(c, strict=False) for c in settings.reserved_cidrs)
    except ValueError as error:
        raise UsageError(f"--reserved-cidr: {error}") from None
    defaults = () if settings.no_default_reserved else DEFAULT_RESERVED + DEFAULT_RESERVED6
    networks = tuple(dict.fromkeys((*defaults, *added)))
    try:
        gateway_ranges = tuple(
            ipaddress.ip_network(c, strict=False) for c in settings.gateway_cidrs
        )
    except ValueError as error:
        raise UsageError(f"--gateway-cidr: {error}") from None
    return SyncSettings(
        ownership=ownership,
        reserved=networks,
        cluster_name=settings.cluster_name,
        wan_interface_list=settings.wan_interface_list,
        gateway_ranges=gateway_ranges,
        allow_source_ranges=settings.allow_source_ranges,
        ip_families=parse_families(settings.ip_families),
        limits=Limits(
            settings.max_sources_per_policy,
            settings.max_ports_per_policy,
            settings.max_router_objects,
        ),
        status_refresh=timedelta(seconds=settings.status_refresh),
        allow_mass_removal=settings.allow_mass_removal,
    )


def _policy_documents(settings: JobSettings) -> PolicyDocuments | None:
    """`--policies-from`, read before anything else is (a preview never writes: --check only)."""
    if not settings.policies_from:
        return None
    if not settings.check:
        raise UsageError(
            "--policies-from is allowed only with --check: it previews what merging the "
            "policies would do, and a run that writes reads them from the cluster"
        )
    if STDIN in settings.policies_from and str(settings.from_file) == STDIN:
        raise UsageError("--policies-from - and --from-file - cannot both read standard input")
    try:
        return read_documents(settings.policies_from)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _formatter(output: str) -> Callable[..., str]:
    return {"json": render.to_json, "markdown": markdown.to_markdown}.get(output, render.to_text)


def _reachable(kubeconfig: str | None) -> bool:
    """A kubeconfig was given (flag or KUBECONFIG) and its first file exists."""
    first = (kubeconfig or "").split(os.pathsep)[0]
    return bool(first) and Path(first).is_file()


def _write_metrics(
    report: RunReport | None,
    code: int,
    duration: float,
    router: RouterReader,
    settings: JobSettings,
) -> None:
    metrics_file = settings.metrics_file
    last = metrics.previous_last_success(metrics_file) if metrics_file else None
    registry = metrics.registry(
        report,
        success=code in (EXIT_OK, EXIT_DRIFT),
        finished=time.time(),
        duration=duration,
        router_requests=router.requests,
        last_success=last,
    )
    if metrics_file:
        metrics.write_textfile(metrics_file, registry)
    if settings.pushgateway_url:
        # The manifests and the chart set the Lease's namespace to the CronJob's own.
        metrics.push(
            settings.pushgateway_url, registry, grouping_key={"namespace": settings.lock.namespace}
        )


def _check_lease_duration(lock: LockSettings, router: RouterSettings) -> None:
    """A run holds the Lease while its router requests may take up to `router.deadline`; the
    margin covers the cluster reads before and the status writes after them."""
    least = router.deadline + LEASE_MARGIN
    if lock.duration <= least:
        raise UsageError(
            f"--lease-duration {lock.duration} must exceed the router deadline "
            f"({router.deadline:g}s) plus a margin of {LEASE_MARGIN:g}s, so more than {least:g}"
        )


class _LeasedWriter(RouterWriter):
    """A RouterWriter that calls `before_first_write` (the Lease's renewal) once, just before
    the first write is sent: the reads are done, and nothing has been written yet."""

    before_first_write: Callable[[], None] | None = None

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET" and self.before_first_write is not None:
            renew, self.before_first_write = self.before_first_write, None
            renew()
        return super()._send(method, path, **kwargs)


def _lease(kube: KubeClient, lock: LockSettings) -> LeaseLock:
    return LeaseLock(
        kube, lock.namespace, lock.name, lock.holder, duration=lock.duration, wait=lock.wait
    )


def _run(
    router: RouterReader,
    sync_settings: SyncSettings,
    settings: JobSettings,
    documents: PolicyDocuments | None = None,
) -> tuple[int, RunReport | None]:
    check = settings.check
    writer: RouterPolicyWriter | None = None
    read_cluster: Callable[[], ClusterSnapshot]
    held: LeaseLock | None = None
    try:
        kube: KubeClient | None = None
        if settings.from_file is not None:
            path: Path = settings.from_file
            read_cluster = lambda: load_snapshot(path)  # noqa: E731
            if documents is not None:
                from_file, found = read_cluster, documents
                read_cluster = lambda: replacing(from_file(), found)  # noqa: E731
            if settings.lock.enabled and _reachable(settings.kubeconfig):
                kube = KubeClient(api_client(settings.kubeconfig))
            elif settings.lock.enabled:
                log.info(
                    "--from-file without a kubeconfig (--kubeconfig or KUBECONFIG): running "
                    "without the Lease, so another run may write at the same time"
                )
        else:
            kube = KubeClient(api_client(settings.kubeconfig))
            cluster = kube
            read_cluster = lambda: read_snapshot(cluster, documents)  # noqa: E731
            writer = None if check else RouterPolicyWriter(kube)
        if settings.lock.enabled and kube is not None:
            held = _lease(kube, settings.lock)
            held.acquire()
            router.restart_deadline()  # the wait for the Lease is not the router's time
            if isinstance(router, _LeasedWriter):
                router.before_first_write = held.renew
        report = run_once(
            read_cluster=read_cluster,
            router=router,
            kube=writer,
            settings=sync_settings,
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
    sys.stdout.write(_formatter(settings.output)(report, check=check))
    sys.stdout.flush()
    if report.held_back:
        _log_held_back(report, check)
    return exit_code(report, check), report


def _log_held_back(report: RunReport, check: bool) -> None:
    names = ", ".join(held.policy for held in report.held_back)
    log.error(
        "%s the removal of %d of the %d policies that own router objects (%s): more than half "
        "at once looks like a bad read, not an intent; if it is intended, run once with "
        "--allow-mass-removal (or ALLOW_MASS_REMOVAL=1)",
        "a run would hold back" if check else "held back",
        len(report.held_back), report.owning_policies, names,
    )  # fmt: skip
