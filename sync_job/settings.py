"""Everything one run of the job is told, as the command line hands it over.

Plain values only (no imports of the pipeline), so `--help` and flag parsing stay fast; the job
checks and turns them into the stages' own settings (`sync_job.job`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class LockSettings:
    enabled: bool
    namespace: str
    name: str
    holder: str
    wait: float
    duration: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSettings:
    check: bool
    output: str
    from_file: Path | None
    kubeconfig: str | None
    router_url: str | None
    router_username: str
    router_password: str = field(repr=False)
    router_ca_file: Path | None
    router_insecure_skip_verify: bool
    router_allow_plain_http: bool = False
    router_cert_sha256: str | None = None
    router_timeout: float
    comment_prefix: str
    reserved_cidrs: tuple[str, ...]
    no_default_reserved: bool = False
    allow_source_ranges: bool = False
    ip_families: str = "ipv4"
    # --max-sources-per-policy, --max-ports-per-policy, --max-router-objects (source/limits.py)
    max_sources_per_policy: int = 1_000
    max_ports_per_policy: int = 50
    max_router_objects: int = 20_000
    cluster_name: str
    wan_interface_list: str | None
    gateway_cidrs: tuple[str, ...]
    status_refresh: float
    log_level: str
    log_format: str
    lock: LockSettings
    pushgateway_url: str | None
    metrics_file: Path | None
    # --allow-mass-removal: the mass-removal guard lets this run's removals through
    allow_mass_removal: bool = False
    # --policies-from (only with --check): YAML files, directories or "-" (standard input)
    # whose policies and CIDR groups replace the cluster's
    policies_from: tuple[str, ...] = ()
