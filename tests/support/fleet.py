"""A four-policy world for the mass-removal guard and the pull-request preview tests.

Policies `p1`..`p4`, each with its own pod, LoadBalancer Service (gateway `10.0.0.1N`, tcp port
`80N0`) and one source `203.0.113.N`. The workloads and the policies are written separately, so a
test can hand the policies to `--policies-from` as a GitOps checkout holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ANNOTATION = "router-policy-sync.homelab-helper.benfiola.com/sync-with-router"
NAMES = ("p1", "p2", "p3", "p4")


def number(name: str) -> int:
    return int(name[1:])


def policy(name: str, sources: list[str] | None = None, annotated: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotated:
        meta["annotations"] = {ANNOTATION: "true"}
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": meta,
        "spec": {
            "endpointSelector": {
                "matchLabels": {"app": name, "k8s:io.kubernetes.pod.namespace": "default"}
            },
            "ingress": [{"fromCIDR": sources or [f"203.0.113.{number(name)}/32"]}],
        },
    }


def workload(name: str) -> list[dict[str, Any]]:
    n = number(name)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{name}-0", "namespace": "default", "labels": {"app": name}},
        "status": {"phase": "Running"},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "web", "port": 8000 + 10 * n, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": f"10.0.0.1{n}"}]}},
    }
    return [pod, service]


def cluster_file(path: Path, *policies: dict[str, Any]) -> Path:
    """The cluster as `--from-file` reads it: all four workloads and `policies`."""
    documents = [doc for name in NAMES for doc in workload(name)] + list(policies)
    path.write_text(yaml.safe_dump_all(documents))
    return path


def four(path: Path) -> Path:
    return cluster_file(path, *(policy(name) for name in NAMES))
