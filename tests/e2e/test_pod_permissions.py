"""The pod can read what it mounts: every Secret volume a non-root container mounts is readable
by its user or its fsGroup, in the rendered kustomize base, the example overlay and the chart.

A real kubelet writes Secret files as root:root with the volume's mode, so a 0440 file is
readable by a non-root user only through the group bits and `fsGroup` (the test world has no
kubelet, so only reading the rendered objects can show it).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from usertools import Tool, helm_fixture, kubectl_fixture  # noqa: F401

from tests.support.router import REPO

CHART = REPO / "charts" / "router-policy-sync"


def unreadable_secrets(documents: list[Any]) -> list[str]:
    """`<kind>/<name>: volume <v> ...` for each Secret a non-root container cannot read."""
    problems = []
    for doc in documents:
        if not doc or doc.get("kind") not in ("CronJob", "Job", "Deployment", "Pod"):
            continue
        spec = doc["spec"]
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", spec)
        pod_context = pod.get("securityContext") or {}
        secrets = {
            v["name"]: v["secret"].get("defaultMode", 0o644)
            for v in pod.get("volumes") or []
            if "secret" in v
        }
        for container in pod.get("containers") or []:
            context = {**pod_context, **(container.get("securityContext") or {})}
            uid, fs_group = context.get("runAsUser"), pod_context.get("fsGroup")
            if uid in (None, 0) and not context.get("runAsNonRoot"):
                continue  # root reads anything
            for mount in container.get("volumeMounts") or []:
                mode = secrets.get(mount["name"])
                if mode is None:
                    continue
                other = mode & 0o004
                group = mode & 0o040 and fs_group is not None
                if not (other or group):
                    problems.append(
                        f"{doc['kind']}/{doc['metadata']['name']}: volume {mount['name']} "
                        f"(mode {mode:04o}) is unreadable for uid {uid} with fsGroup {fs_group}"
                    )
    return problems


def rendered(kubectl: Tool, helm: Tool, where: str) -> list[Any]:
    if where == "chart":
        url = "config.mikrotikBaseURL=https://192.0.2.1/rest"
        text = helm.run("template", "rps", str(CHART), "-n", "x", "--set", url).stdout
    else:
        text = kubectl.run("kustomize", str(REPO / "manifests" / where)).stdout
    return list(yaml.safe_load_all(text))


@pytest.mark.parametrize("where", ["base", "overlays/example", "chart"])
def test_every_mounted_secret_is_readable_by_the_job(kubectl: Tool, helm: Tool, where: str) -> None:
    documents = rendered(kubectl, helm, where)
    assert any(d and d.get("kind") == "CronJob" for d in documents)
    assert unreadable_secrets(documents) == []


def test_the_check_sees_a_secret_the_kubelet_would_make_unreadable() -> None:
    """The manifest as it was before fsGroup: 0440, uid 65532, no fsGroup."""
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
        "volumes": [{"name": "router", "secret": {"secretName": "s", "defaultMode": 0o440}}],
        "containers": [{"name": "sync", "volumeMounts": [{"name": "router", "mountPath": "/r"}]}],
    }
    cron = {"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": pod}}}}}  # fmt: skip
    assert unreadable_secrets([cron]) == [
        "CronJob/c: volume router (mode 0440) is unreadable for uid 65532 with fsGroup None"
    ]
    pod["securityContext"]["fsGroup"] = 65532  # type: ignore[index]
    assert unreadable_secrets([cron]) == []
