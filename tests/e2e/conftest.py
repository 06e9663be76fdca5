"""Fixtures for the end-to-end tests: one real control plane (etcd + kube-apiserver) per session.

This file owns the session-scoped ``control_plane`` and ``api_client`` fixtures and marks every
test under ``tests/e2e/`` with ``e2e``. If the control plane cannot be built or started, the
tests are skipped, or fail when ``CI=true``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # tests/controlplane -> controlplane
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from controlplane.plane import (
    ControlPlane,
    ControlPlaneUnavailable,
    api_client_for,
    find_binaries,
    start,
    stop,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
CRD_PATHS = (
    REPO_ROOT / "manifests" / "base" / "crd-routerpolicies.yaml",
    FIXTURES / "cilium" / "crds" / "ciliumclusterwidenetworkpolicies.yaml",
    FIXTURES / "cilium" / "crds" / "ciliumcidrgroups.yaml",
    FIXTURES / "prometheus-operator" / "monitoring.coreos.com_prometheusrules.yaml",
)
E2E_DIR = Path(__file__).resolve().parent
JOB_NAMESPACE = "router-policy-sync"

STARTUP_SECONDS = pytest.StashKey[float]()

log = logging.getLogger(__name__)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if STARTUP_SECONDS in config.stash:
        seconds = config.stash[STARTUP_SECONDS]
        terminalreporter.write_line(f"e2e control plane started in {seconds:.2f}s")


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with the RouterPolicy, Cilium and PrometheusRule CRDs installed."""
    plane = _start_or_reason(tmp_path_factory.mktemp("control-plane"))
    if isinstance(plane, str):
        message = f"control plane unavailable: {plane}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    log.info(
        "control plane %s ready in %.2fs (etcd spawned to CRDs established), files in %s",
        plane.server,
        plane.startup_seconds,
        plane.base_dir,
    )
    request.config.stash[STARTUP_SECONDS] = plane.startup_seconds
    try:
        yield plane
    finally:
        stop(plane)


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """A client authenticated as ``admin`` (group ``system:masters``).

    Also creates the job's namespace, where runs with the default ``--lease`` keep their Lease.
    """
    with api_client_for(control_plane.admin_kubeconfig) as api:
        core = client.CoreV1Api(api)
        if JOB_NAMESPACE not in {ns.metadata.name for ns in core.list_namespace().items}:
            core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=JOB_NAMESPACE))
            )
        yield api


def _start_or_reason(workdir: Path) -> ControlPlane | str:
    try:
        return start(find_binaries(), workdir, CRD_PATHS)
    except ControlPlaneUnavailable as exc:
        return exc.reason
