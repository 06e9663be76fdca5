"""The Helm chart: lint-clean, packageable, the same objects as the kustomize base and overlay,
every setting of the command reachable from values, and a schema that refuses typos.

Rendering uses the real helm and kubectl (its built-in kustomize); the rendered chart is then
dry-run server-side against the session's kube-apiserver.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane.plane import ControlPlane
from kubernetes.client import ApiClient
from usertools import Tool, helm_fixture, kubectl_fixture  # noqa: F401

from tests.support.router import REPO

CHART = REPO / "charts" / "router-policy-sync"
URL = "https://192.0.2.1/rest"  # the base's router URL, a documentation address
# Labels the chart puts on every object's own metadata that the base does not have.
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
}
# The README's `helm install` settings, which must give the example overlay's objects.
README_HELM_SETTINGS = {
    "image.repository": "registry.example.com/router-policy-sync",
    "image.tag": "0.1.0",
    "config.mikrotikBaseURL": "https://198.51.100.1/rest",
    "config.mikrotikPasswordSecret": "router-policy-sync-router",
    "config.mikrotikPasswordKey": "password",
    "config.mikrotikCAKey": "ca.crt",
    "config.syncInterval": "10m",
}
# Settings of `sync` a pod sets itself, so the chart has no value for them.
NOT_VALUES = {
    "KUBECONFIG": "in-cluster: the pod's ServiceAccount",
    "SYNC_FROM_FILE": "a CronJob reads the cluster",
    "MIKROTIK_PASSWORD": "never a literal: the Secret is mounted as a file",
    "MIKROTIK_PASSWORD_FILE": "follows from config.mikrotikPasswordKey",
    "MIKROTIK_CA_FILE": "follows from config.mikrotikCAKey",
    "LEASE_NAMESPACE": "the pod's namespace",
    "LEASE_HOLDER": "the pod's name",
    "POLICIES_FROM": "--check only, a pull-request preview reads a checkout; a CronJob the cluster",
}


def template(helm: Tool, *settings: str, check: bool = True, chart: Path = CHART) -> Any:
    args = ["template", "router-policy-sync", str(chart), "--namespace", "router-policy-sync"]
    for setting in settings:
        args += ["--set", setting]
    return helm.run(*args, "--include-crds", check=check)


def objects(text: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    found = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            meta = doc["metadata"]
            found[(doc["kind"], meta.get("namespace", ""), meta["name"])] = doc
    return found


def without_helm_labels(docs: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    stripped = {}
    for key, doc in docs.items():
        doc = copy.deepcopy(doc)
        labels = {
            k: v for k, v in doc["metadata"].pop("labels", {}).items() if k not in HELM_LABELS
        }
        if labels:
            doc["metadata"]["labels"] = labels
        stripped[key] = doc
    return stripped


def cronjob(helm: Tool, *settings: str) -> dict[str, Any]:
    rendered = objects(template(helm, f"config.mikrotikBaseURL={URL}", *settings).stdout)
    return rendered[("CronJob", "router-policy-sync", "router-policy-sync")]


def env_of(cron: dict[str, Any]) -> dict[str, str]:
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "<from the pod>") for e in container["env"]}


def test_chart_renders_the_kustomize_base_object_by_object(helm: Tool, kubectl: Tool) -> None:
    base = objects(kubectl.run("kustomize", str(REPO / "manifests" / "base")).stdout)
    chart = objects(template(helm, f"config.mikrotikBaseURL={URL}", "namespace.create=true").stdout)
    assert sorted(chart) == sorted(base)
    assert without_helm_labels(chart) == base


def test_readme_helm_settings_render_the_example_overlay(helm: Tool, kubectl: Tool) -> None:
    overlay = kubectl.run("kustomize", str(REPO / "manifests" / "overlays" / "example")).stdout
    settings = [f"{k}={v}" for k, v in README_HELM_SETTINGS.items()]
    chart = objects(template(helm, *settings, "namespace.create=true").stdout)
    assert without_helm_labels(chart) == objects(overlay)


def test_chart_without_a_namespace_renders_everything_else(helm: Tool) -> None:
    default = objects(template(helm, f"config.mikrotikBaseURL={URL}").stdout)
    assert {kind for kind, _, _ in default} == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "CronJob",
    }


def test_helm_lint_is_clean(helm: Tool) -> None:
    done = helm.run("lint", "--strict", str(CHART), "--set", f"config.mikrotikBaseURL={URL}")
    assert "0 chart(s) failed" in done.stdout, done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_helm_package_makes_an_archive_that_renders(helm: Tool, tmp_path: Path) -> None:
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("router-policy-sync-*.tgz")
    assert archive.name == "router-policy-sync-0.1.0.tgz"
    packaged = objects(template(helm, f"config.mikrotikBaseURL={URL}", chart=archive).stdout)
    assert packaged == objects(template(helm, f"config.mikrotikBaseURL={URL}").stdout)
    refused = template(helm, "config.mikrotikBaseURl=x", check=False, chart=archive)
    assert refused.returncode != 0, "the packaged chart must carry its schema"


def test_rendered_chart_passes_server_side_dry_run(
    helm: Tool, kubectl: Tool, control_plane: ControlPlane, api_client: ApiClient
) -> None:
    rendered = template(helm, f"config.mikrotikBaseURL={URL}", "namespace.create=true").stdout
    done = kubectl.run(
        "apply",
        "--dry-run=server",
        "--server-side",
        "--force-conflicts",
        "--field-manager=helm-dry-run",
        "-f",
        "-",
        stdin=rendered,
        env={"KUBECONFIG": str(control_plane.admin_kubeconfig)},
    )
    assert done.stdout.count("(server dry run)") == len(objects(rendered)), done.stdout


@pytest.mark.parametrize(
    "typo",
    [
        "config.mikrotikBaseUrll=https://192.0.2.1/rest",  # an unknown key
        "deployment.replicas=1",  # a Go chart value that means nothing now
        "config.mikrotikTimeout=ten",  # a wrong type
        "config.syncInterval=5 minutes",  # not Nm / Nh
        "config.logLevel=verbose",  # not one of the levels
    ],
)
def test_schema_refuses_a_typo_at_helm_install(helm: Tool, typo: str) -> None:
    done = helm.run(
        "install",
        "router-policy-sync",
        str(CHART),
        "--dry-run=client",
        "--set",
        f"config.mikrotikBaseURL={URL}",
        "--set",
        typo,
        check=False,
    )
    assert done.returncode != 0
    assert "schema" in done.stderr, done.stderr


def test_go_chart_spelling_of_the_base_url_is_accepted(helm: Tool) -> None:
    rendered = objects(template(helm, f"config.mikrotikBaseUrl={URL}").stdout)
    cron = rendered[("CronJob", "router-policy-sync", "router-policy-sync")]
    assert env_of(cron)["MIKROTIK_BASE_URL"] == URL


def test_missing_base_url_is_refused(helm: Tool) -> None:
    done = template(helm, check=False)
    assert done.returncode != 0 and "config.mikrotikBaseURL is required" in done.stderr


@pytest.mark.parametrize(
    ("settings", "schedule", "deadline"),
    [
        ((), "*/5 * * * *", 240),
        (("config.syncInterval=10m",), "*/10 * * * *", 480),
        (("config.syncInterval=60m",), "0 * * * *", 2880),
        (("config.syncInterval=2h",), "0 */2 * * *", 5760),
        (("schedule=3 4 * * *",), "3 4 * * *", 240),
        (("schedule=3 4 * * *", "activeDeadlineSeconds=600"), "3 4 * * *", 600),
    ],
)
def test_sync_interval_becomes_the_cron_schedule(
    helm: Tool, settings: tuple[str, ...], schedule: str, deadline: int
) -> None:
    cron = cronjob(helm, *settings)
    assert cron["spec"]["schedule"] == schedule
    assert cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == deadline


@pytest.mark.parametrize("interval", ["7m", "90m", "5h"])
def test_sync_interval_without_a_cron_form_is_refused(helm: Tool, interval: str) -> None:
    done = template(
        helm, f"config.mikrotikBaseURL={URL}", f"config.syncInterval={interval}", check=False
    )
    assert done.returncode != 0 and "cannot be a cron schedule" in done.stderr, done.stderr


def test_every_setting_of_the_command_has_a_value(helm: Tool, tmp_path: Path) -> None:
    from typer.main import get_command

    from sync_job.cli import app

    sync = get_command(app).commands["sync"]  # type: ignore[attr-defined]
    every = {p.envvar for p in sync.params if p.envvar}
    values = {
        "config": {
            "mikrotikBaseURL": URL,
            "mikrotikUsername": "sync-user",
            "mikrotikCAKey": "ca.crt",
            "mikrotikInsecureSkipVerify": True,
            "mikrotikAllowPlainHTTP": True,
            "mikrotikCertSHA256": "AB:CD:EF",
            "mikrotikTimeout": 7,
            "commentPrefix": "lab-2",
            "reservedCIDRs": ["10.0.0.0/8", "192.168.0.0/16"],
            "noDefaultReserved": True,
            "allowSourceRanges": True,
            "ipFamilies": "ipv4,ipv6",
            "allowMassRemoval": True,
            "maxSourcesPerPolicy": 2000,
            "maxPortsPerPolicy": 20,
            "maxRouterObjects": 1_000_000,
            "wanInterfaceList": "WAN",
            "gatewayCIDRs": ["10.0.0.0/24"],
            "ciliumClusterName": "lab",
            "statusRefresh": 600,
            "check": True,
            "output": "json",
            "logLevel": "debug",
            "logFormat": "text",
            "lease": False,
            "leaseName": "lab-lease",
            "leaseWait": 5,
            "leaseDuration": 100,
            "pushgatewayURL": "http://127.0.0.1:9091",
            "metricsFile": "/tmp/metrics.prom",
        }
    }
    (tmp_path / "values.yaml").write_text(json.dumps(values))
    done = helm.run(
        "template", "router-policy-sync", str(CHART), "-n", "router-policy-sync",
        "-f", str(tmp_path / "values.yaml"),
    )  # fmt: skip
    rendered = objects(done.stdout)
    env = env_of(rendered[("CronJob", "router-policy-sync", "router-policy-sync")])
    assert set(env) | set(NOT_VALUES) >= every, f"no value for {every - set(env) - set(NOT_VALUES)}"
    assert env["RESERVED_CIDRS"] == "10.0.0.0/8 192.168.0.0/16"
    assert env["GATEWAY_CIDRS"] == "10.0.0.0/24"
    assert env["MIKROTIK_INSECURE_SKIP_VERIFY"] == "true" and env["LEASE"] == "false"
    assert env["MIKROTIK_ALLOW_PLAIN_HTTP"] == "true" and env["MIKROTIK_CERT_SHA256"] == "AB:CD:EF"
    assert env["MIKROTIK_TIMEOUT"] == "7" and env["STATUS_REFRESH"] == "600"
    assert env["ALLOW_MASS_REMOVAL"] == "true"
    assert (env["MAX_SOURCES_PER_POLICY"], env["MAX_PORTS_PER_POLICY"]) == ("2000", "20")
    assert env["MAX_ROUTER_OBJECTS"] == "1000000"  # not 1e+06
    assert env["MIKROTIK_CA_FILE"] == "/etc/router-policy-sync/router/ca.crt"
    role = rendered[("Role", "router-policy-sync", "router-policy-sync-lease")]
    assert role["rules"][2]["resourceNames"] == ["lab-lease"]
