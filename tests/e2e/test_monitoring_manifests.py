"""The optional monitoring and egress objects, as a user renders them: the kustomize components
(real kubectl's kustomize) and the chart values (real helm), each dry-run server-side against
the session's kube-apiserver, where the PrometheusRule is checked by prometheus-operator's own
CRD (tests/fixtures/prometheus-operator/, v0.93.0)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane.plane import ControlPlane
from kubernetes.client import ApiClient
from test_helm_chart import URL, objects, template, without_helm_labels
from usertools import Tool, helm_fixture, kubectl_fixture  # noqa: F401

from sync_job.metrics import METRIC_NAMES
from tests.support.monitoring import DASHBOARD_FILE, rule_expressions, selected_metrics
from tests.support.router import REPO

COMPONENTS = REPO / "manifests" / "components"
NS = "router-policy-sync"
RULE = ("PrometheusRule", NS, "router-policy-sync")
DASHBOARD = ("ConfigMap", NS, "router-policy-sync-dashboard")
EGRESS = ("NetworkPolicy", NS, "router-policy-sync-egress")
# The addresses README "Locked-down egress" sets (its patch block is the one used here).
API_SERVER, ROUTER = "10.0.0.10/32", "192.168.88.1/32"


def readme_egress_patch() -> str:
    """The kustomize patch README "Locked-down egress" tells a user to add to an overlay."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- egress-patch -->\n```yaml\n(.*?)\n```", text, re.S)
    assert match, "README has no egress patch block"
    return match.group(1)


def overlay(tmp_path: Path, *components: str, extra: str = "") -> Path:
    """A user's overlay: the base plus the components named, in a folder outside the repo."""
    folder = tmp_path / "overlay"
    folder.mkdir()
    base = os.path.relpath(REPO / "manifests" / "base", folder)
    listed = "".join(f"  - {os.path.relpath(COMPONENTS / name, folder)}\n" for name in components)
    (folder / "kustomization.yaml").write_text(
        f"resources:\n  - {base}\ncomponents:\n{listed}{extra}"
    )
    return folder


def dry_run(kubectl: Tool, plane: ControlPlane, rendered: str, check: bool = True) -> Any:
    return kubectl.run(
        "apply", "--dry-run=server", "--server-side", "--force-conflicts",
        "--field-manager=monitoring-dry-run", "-f", "-",
        stdin=rendered, env={"KUBECONFIG": str(plane.admin_kubeconfig)}, check=check,
    )  # fmt: skip


def only(docs: dict[Any, dict[str, Any]], *keys: Any) -> str:
    return "---\n".join(yaml.safe_dump(docs[key]) for key in keys)


def test_monitoring_component_builds_and_passes_server_side_dry_run(
    kubectl: Tool, control_plane: ControlPlane, api_client: ApiClient, tmp_path: Path
) -> None:
    built = objects(kubectl.run("kustomize", str(overlay(tmp_path, "monitoring"))).stdout)
    base = objects(kubectl.run("kustomize", str(REPO / "manifests" / "base")).stdout)
    assert set(built) - set(base) == {RULE, DASHBOARD}
    done = dry_run(kubectl, control_plane, only(built, RULE, DASHBOARD))
    assert done.stdout.count("(server dry run)") == 2, done.stdout
    for alert, expr in rule_expressions(built[RULE]).items():
        assert selected_metrics(expr) <= METRIC_NAMES, alert
    dashboard = built[DASHBOARD]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"router-policy-sync.json": DASHBOARD_FILE.read_text()}


def test_the_crd_really_checks_the_rule(
    kubectl: Tool, control_plane: ControlPlane, api_client: ApiClient, tmp_path: Path
) -> None:
    """The dry-run above means something: a rule the CRD's schema refuses is refused."""
    built = objects(kubectl.run("kustomize", str(overlay(tmp_path, "monitoring"))).stdout)
    broken = copy.deepcopy(built[RULE])
    broken["spec"]["groups"][0]["rules"][1]["for"] = "fifteen minutes"
    done = dry_run(kubectl, control_plane, yaml.safe_dump(broken), check=False)
    assert done.returncode != 0 and "spec.groups[0].rules[1].for" in done.stderr, done.stderr


def test_chart_monitoring_values_render_the_component_and_pass_dry_run(
    helm: Tool, kubectl: Tool, control_plane: ControlPlane, api_client: ApiClient, tmp_path: Path
) -> None:
    component = objects(kubectl.run("kustomize", str(overlay(tmp_path, "monitoring"))).stdout)
    off = objects(template(helm, f"config.mikrotikBaseURL={URL}").stdout)
    assert RULE not in off and DASHBOARD not in off  # both optional, off by default
    settings = (
        f"config.mikrotikBaseURL={URL}",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.dashboard.enabled=true",
    )
    chart = objects(template(helm, *settings).stdout)
    assert without_helm_labels({RULE: chart[RULE]}) == {RULE: component[RULE]}
    assert without_helm_labels({DASHBOARD: chart[DASHBOARD]}) == {DASHBOARD: component[DASHBOARD]}
    done = dry_run(kubectl, control_plane, only(chart, RULE, DASHBOARD))
    assert done.stdout.count("(server dry run)") == 2, done.stdout

    labelled = objects(
        template(helm, *settings, "monitoring.prometheusRule.labels.release=kps").stdout
    )
    assert labelled[RULE]["metadata"]["labels"]["release"] == "kps"


@pytest.mark.parametrize(
    ("settings", "stale", "not_ready_for"),
    [
        (("config.syncInterval=5m",), 900, "600s"),
        (("config.syncInterval=10m",), 1800, "1200s"),
        (("config.syncInterval=1h",), 10800, "7200s"),
        (("schedule=3 * * * *", "monitoring.intervalSeconds=3600"), 10800, "7200s"),
    ],
)
def test_chart_alert_thresholds_follow_the_sync_interval(
    helm: Tool, settings: tuple[str, ...], stale: int, not_ready_for: str
) -> None:
    rendered = objects(
        template(
            helm, f"config.mikrotikBaseURL={URL}", "monitoring.prometheusRule.enabled=true",
            *settings,
        ).stdout
    )  # fmt: skip
    rules = {r["alert"]: r for r in rendered[RULE]["spec"]["groups"][0]["rules"]}
    assert rules["RouterPolicySyncNoRecentSuccess"]["expr"].endswith(f"> {stale}")
    assert rules["RouterPolicySyncNoSuccessRecorded"]["for"] == f"{stale}s"
    assert rules["RouterPolicySyncPolicyNotReady"]["for"] == not_ready_for
    for rule in rules.values():
        selected_metrics(rule["expr"])  # still PromQL


def test_chart_alerts_with_a_cron_schedule_need_the_interval(helm: Tool) -> None:
    done = template(
        helm, f"config.mikrotikBaseURL={URL}", "monitoring.prometheusRule.enabled=true",
        "schedule=3 * * * *", check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "monitoring.intervalSeconds is required" in done.stderr


def test_egress_component_with_the_readme_patch_passes_server_side_dry_run(
    kubectl: Tool, control_plane: ControlPlane, api_client: ApiClient, tmp_path: Path
) -> None:
    patch = readme_egress_patch()
    built = objects(kubectl.run("kustomize", str(overlay(tmp_path, "egress", extra=patch))).stdout)
    policy = built[EGRESS]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": NS}
    pod = built[("CronJob", NS, NS)]["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app.kubernetes.io/name": NS}  # it selects the job
    assert policy["spec"]["policyTypes"] == ["Egress"]
    dns, api, router = policy["spec"]["egress"]
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert api == {
        "to": [{"ipBlock": {"cidr": API_SERVER}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }
    assert router == {
        "to": [{"ipBlock": {"cidr": ROUTER}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    done = dry_run(kubectl, control_plane, only(built, EGRESS))
    assert "networkpolicy.networking.k8s.io/router-policy-sync-egress" in done.stdout, done.stdout
    assert "(server dry run)" in done.stdout


def test_chart_egress_values_render_the_component_and_pass_dry_run(
    helm: Tool, kubectl: Tool, control_plane: ControlPlane, api_client: ApiClient, tmp_path: Path
) -> None:
    patched = objects(
        kubectl.run(
            "kustomize", str(overlay(tmp_path, "egress", extra=readme_egress_patch()))
        ).stdout
    )
    assert EGRESS not in objects(template(helm, f"config.mikrotikBaseURL={URL}").stdout)
    settings = (
        f"config.mikrotikBaseURL={URL}",
        "networkPolicy.egress.enabled=true",
        f"networkPolicy.egress.apiServerCIDRs={{{API_SERVER}}}",
        f"networkPolicy.egress.routerCIDR={ROUTER}",
    )
    chart = objects(template(helm, *settings).stdout)
    assert without_helm_labels({EGRESS: chart[EGRESS]}) == {EGRESS: patched[EGRESS]}
    done = dry_run(kubectl, control_plane, only(chart, EGRESS))
    assert "(server dry run)" in done.stdout, done.stdout

    more = objects(
        template(
            helm, *settings, "networkPolicy.egress.routerPort=8443",
            "networkPolicy.egress.apiServerCIDRs={192.0.2.10/32,192.0.2.11/32}",
        ).stdout
    )  # fmt: skip
    _, api, router = more[EGRESS]["spec"]["egress"]
    assert [t["ipBlock"]["cidr"] for t in api["to"]] == ["192.0.2.10/32", "192.0.2.11/32"]
    assert router["ports"] == [{"protocol": "TCP", "port": 8443}]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("networkPolicy.egress.routerCIDR=192.0.2.1/32", "apiServerCIDRs is required"),
        ("networkPolicy.egress.apiServerCIDRs={192.0.2.10/32}", "routerCIDR is required"),
    ],
)
def test_chart_egress_without_an_address_is_refused(helm: Tool, missing: str, message: str) -> None:
    done = template(
        helm, f"config.mikrotikBaseURL={URL}", "networkPolicy.egress.enabled=true", missing,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0 and message in done.stderr, done.stderr
