"""The README's install and operate blocks, run verbatim with the real kubectl and helm.

The kustomize story runs on the session's API server: apply the base and the example overlay,
create the password Secret, annotate a policy, start a manual run, read the status. There is no
controller-manager or kubelet, so the Job that ``kubectl create job --from`` makes is checked to
carry the CronJob's pod template, and then its container command runs here as that pod would:
its env, its ServiceAccount's token, its Secret's files, against the RouterOS emulator on
127.0.0.1 over TLS (the only change is the router URL, a documentation address never contacted).
The Helm story runs on a control plane of its own, which has never seen the kustomize objects.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from controlplane.plane import (
    ControlPlane,
    ControlPlaneUnavailable,
    find_binaries,
    kubeconfig_for_token,
    start,
    stop,
)
from k8s import (
    ANNOTATION,
    CCNP,
    RP,
    call,
    create_ccnp,
    create_lb_service,
    create_namespace,
    create_pod,
    delete_quietly,
    unique,
)
from kubernetes.client import ApiClient
from readme import checkout, marked_blocks
from usertools import Tool, bash, env_with, helm_fixture, kubectl_fixture  # noqa: F401

from sync_job.testing.emulator import RouterOSEmulator
from tests.support.router import ADDRESS_LIST, FIXTURES, NAT, PASSWORD, seed_router

NS = "router-policy-sync"
CRONJOB = f"/apis/batch/v1/namespaces/{NS}/cronjobs/router-policy-sync"
JOB = f"/apis/batch/v1/namespaces/{NS}/jobs/manual-1"
SECRET = f"/api/v1/namespaces/{NS}/secrets/router-policy-sync-router"
KUSTOMIZE_STORY = ("install-kustomize", "secret", "annotate", "manual-run", "status")
HELM_STORY = ("install-helm", "secret", "manual-run")
DOCUMENTATION_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24")]
GATEWAY, SOURCE = "10.0.0.5", "203.0.113.10"
CILIUM_CRD = FIXTURES / "cilium" / "crds" / "ciliumclusterwidenetworkpolicies.yaml"


def test_every_tested_block_is_run_by_a_story() -> None:
    assert set(marked_blocks()) == {*KUSTOMIZE_STORY, *HELM_STORY}


class Story:
    """Runs README blocks by name in a user's checkout, with a kubeconfig for one cluster."""

    def __init__(self, workdir: Path, tools: list[Tool], kubeconfig: Path) -> None:
        self.blocks = marked_blocks()
        self.workdir = workdir
        self.home = workdir.parent / "home"
        self.home.mkdir()
        self.env = env_with(tools) | {"KUBECONFIG": str(kubeconfig), "HOME": str(self.home)}

    def run(self, name: str) -> str:
        done = bash(self.blocks[name], self.env, self.workdir)
        assert done.returncode == 0, f"README block {name!r} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    def write_secret_files(self, ca_file: Path) -> None:
        """The two files the README tells the user to create, in their home (a fake password)."""
        (self.home / "router-password").write_text(PASSWORD + "\n")
        (self.home / "router-ca.crt").write_bytes(ca_file.read_bytes())


@pytest.fixture
def my_policy(api_client: ApiClient) -> Iterator[str]:
    """The README's `my-policy`, not yet annotated, selecting a pod behind a LoadBalancer."""
    namespace = unique("web")
    create_namespace(api_client, namespace)
    create_pod(api_client, namespace, "web-0", {"app": "web"})
    create_lb_service(api_client, namespace, "web", {"app": "web"}, [("TCP", 443)], GATEWAY)
    create_ccnp(
        api_client, "my-policy", namespace, {"app": "web"}, [f"{SOURCE}/32"], annotated=False
    )
    try:
        yield "my-policy"
    finally:
        for path in (f"{CCNP}/my-policy", f"{RP}/my-policy", JOB, CRONJOB, SECRET):
            delete_quietly(api_client, path)


def test_readme_kustomize_install_and_operate_blocks_run_verbatim(
    api_client: ApiClient,
    control_plane: ControlPlane,
    kubectl: Tool,
    my_policy: str,
    tmp_path: Path,
) -> None:
    story = Story(
        checkout(tmp_path / "checkout", "manifests"), [kubectl], control_plane.admin_kubeconfig
    )

    applied = story.run("install-kustomize")
    assert applied.count("cronjob.batch/router-policy-sync") == 2, applied  # base, then overlay
    cronjob = call(api_client, "GET", CRONJOB)
    assert cronjob["spec"]["schedule"] == "*/10 * * * *"
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/router-policy-sync:0.1.0"

    story.write_secret_files(control_plane.ca_file)
    story.run("secret")
    story.run("annotate")
    assert ANNOTATION in call(api_client, "GET", f"{CCNP}/{my_policy}")["metadata"]["annotations"]

    story.run("manual-run")
    job = call(api_client, "GET", JOB)
    assert (
        job["spec"]["template"]["spec"]
        == cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    )
    assert job["metadata"]["ownerReferences"][0]["name"] == "router-policy-sync"

    emulator = RouterOSEmulator("router-policy-sync", PASSWORD)
    seed_router(emulator)
    with emulator.serve(ssl_context=_serving_tls(control_plane)) as url:
        done = run_pod(api_client, control_plane, job, url, tmp_path / "pod")
    assert done.returncode == 0, done.stderr
    assert [
        r["address"]
        for r in emulator.rows(ADDRESS_LIST)
        if r["list"] == "router-policy-sync::my-policy"
    ] == [SOURCE]
    assert any(r.get("to-addresses") == GATEWAY for r in emulator.rows(NAT))

    status = story.run("status")
    listing, described = status.split("Name:", 1)
    row = next(line.split() for line in listing.splitlines() if line.startswith("my-policy "))
    assert row[1:4] == ["True", "Synced", GATEWAY], listing
    assert "RouterUpdated" in described, described


def run_pod(
    api: ApiClient, plane: ControlPlane, job: dict[str, Any], router_url: str, root: Path
) -> subprocess.CompletedProcess[str]:
    """Run the Job's container as its pod would: the container's args and env (fieldRefs
    resolved), the Secret's keys as files at the mount path, the ServiceAccount's token."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["sync"]
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        local = root / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True)
        if "secret" in volume:
            secret = call(
                api, "GET", f"/api/v1/namespaces/{NS}/secrets/{volume['secret']['secretName']}"
            )
            for key, data in secret["data"].items():
                (local / key).write_bytes(base64.b64decode(data))
        mounts[mount["mountPath"]] = local
    pod_name = f"{job['metadata']['name']}-x7k2p"
    env = {}
    for item in container["env"]:
        if "valueFrom" in item:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            env[item["name"]] = {"metadata.namespace": NS, "metadata.name": pod_name}[path]
            continue
        value = item["value"]
        for mount_path, local in sorted(mounts.items(), reverse=True):  # longest path first
            if value.startswith(mount_path + "/"):
                value = str(local) + value[len(mount_path) :]
                break
        env[item["name"]] = value
    configured = urlsplit(env["MIKROTIK_BASE_URL"]).hostname or ""
    assert any(ipaddress.ip_address(configured) in net for net in DOCUMENTATION_NETS), configured
    env["MIKROTIK_BASE_URL"] = router_url  # the one change: the emulator stands in for the router
    token = call(
        api,
        "POST",
        f"/api/v1/namespaces/{NS}/serviceaccounts/{pod['serviceAccountName']}/token",
        {"spec": {"expirationSeconds": 600}},
    )["status"]["token"]
    env["KUBECONFIG"] = str(kubeconfig_for_token(plane, token, root / "kubeconfig"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MIKROTIK_", "KUBECONFIG"))}
    done = subprocess.run(
        [sys.executable, "-m", "sync_job", *container["args"]],
        capture_output=True,
        text=True,
        env=clean | env,
        timeout=120,
        check=False,
    )
    assert PASSWORD not in done.stdout + done.stderr
    return done


def _serving_tls(plane: ControlPlane) -> ssl.SSLContext:
    """The emulator serves the API server's certificate (127.0.0.1), signed by the CA the
    README's `router-ca.crt` holds."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki = plane.ca_file.parent
    context.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    return context


@pytest.fixture
def fresh_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane with only the Cilium CRD (the chart installs its own), under the
    session's rule: skipped when it cannot be had, failed when ``CI=true``."""
    try:
        plane = start(find_binaries(), tmp_path / "plane", [CILIUM_CRD])
    except ControlPlaneUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"control plane unavailable: {exc.reason}", pytrace=False)
        pytest.skip(f"control plane unavailable: {exc.reason}")
    try:
        yield plane
    finally:
        stop(plane)


def test_readme_helm_install_block_runs_verbatim(
    fresh_plane: ControlPlane, kubectl: Tool, helm: Tool, tmp_path: Path
) -> None:
    workdir = checkout(tmp_path / "checkout", "charts")
    story = Story(workdir, [kubectl, helm], fresh_plane.admin_kubeconfig)
    story.run("install-helm")
    story.write_secret_files(fresh_plane.ca_file)
    story.run("secret")
    story.run("manual-run")

    released = json.loads(
        helm.run("status", "router-policy-sync", "-n", NS, "-o", "json", env=story.env).stdout
    )
    assert released["info"]["status"] == "deployed"
    got = json.loads(
        kubectl.run(
            "get",
            "-n",
            NS,
            "cronjob/router-policy-sync",
            "job/manual-1",
            "-o",
            "json",
            env=story.env,
        ).stdout
    )
    cronjob, job = got["items"]
    assert cronjob["spec"]["schedule"] == "*/10 * * * *"
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job["spec"]["template"]["spec"] == template
    env = {e["name"]: e.get("value") for e in template["containers"][0]["env"]}
    assert env["MIKROTIK_BASE_URL"] == "https://198.51.100.1/rest"
    assert env["MIKROTIK_CA_FILE"] == "/etc/router-policy-sync/router/ca.crt"
    kubectl.run(
        "get", "crd", "routerpolicies.router-policy-sync.homelab-helper.benfiola.com", env=story.env
    )
