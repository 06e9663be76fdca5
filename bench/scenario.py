"""Scenario S scaled by `f`: the cluster objects (pods, Services, policies), as a YAML snapshot."""

from __future__ import annotations

import ipaddress
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.common import ANNOTATION

SCALE_NAMES = {0.1: "S/10", 1.0: "S", 3.0: "S×3"}
POLICY_PORTS = (("TCP", 80), ("TCP", 443), ("UDP", 53))
PODS_PER_POLICY = 4
PODS_PER_OTHER = 6


@dataclass
class Scenario:
    f: float
    policies: int
    pods: int
    services: int
    namespaces: list[str]
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return SCALE_NAMES.get(self.f, f"S×{self.f:g}")

    def policy_ns(self, i: int) -> str:
        return self.namespaces[i % len(self.namespaces)]


def sources(i: int, count: int = 10) -> list[str]:
    base = int(ipaddress.IPv4Address("11.0.0.0")) + i * 16
    return [f"{ipaddress.IPv4Address(base + k + 1)}/32" for k in range(count)]


def service_ports(ports: tuple[tuple[str, int], ...]) -> list[dict[str, Any]]:
    return [
        {"name": f"{proto.lower()}-{port}", "protocol": proto, "port": port, "targetPort": port}
        for proto, port in ports
    ]


def pod(ns: str, app: str, index: int, node: int) -> dict[str, Any]:
    template_hash = f"{abs(hash(app)) % 10**10:010d}"[:10]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-{template_hash}-{index:05d}",
            "namespace": ns,
            "labels": {
                "app": app,
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/part-of": "bench",
                "pod-template-hash": template_hash,
            },
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-{template_hash}",
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": f"node-{node}",
            "serviceAccountName": app,
            "containers": [
                {
                    "name": "app",
                    "image": f"registry.example.com/team/{app}:1.2.3",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": f"SETTING_{k}", "value": f"value-{k}"} for k in range(4)],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": 8080},
                        "periodSeconds": 10,
                    },
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}},
                    "volumeMounts": [
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        }
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                        ],
                    },
                }
            ],
        },
    }


def pod_status(pod: dict[str, Any], number: int) -> dict[str, Any]:
    stamp = "2025-01-01T00:00:00Z"
    ip = f"10.{128 + number // 65536}.{number // 256 % 256}.{number % 256}"
    host = pod["spec"]["nodeName"].removeprefix("node-")
    conditions = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": kind, "status": "True", "lastTransitionTime": stamp}
                for kind in (*conditions, "PodScheduled")
            ],
            "hostIP": f"192.168.100.{host}",
            "hostIPs": [{"ip": f"192.168.100.{host}"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": stamp,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "registry.example.com/team/app@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + uuid.uuid4().hex * 2,
                    "state": {"running": {"startedAt": stamp}},
                }
            ],
        }
    }


def service(ns: str, app: str, kind: str, ports: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind, "selector": {"app": app}, "ports": service_ports(ports)}
    if kind == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = False  # the node-port range would run out
    else:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "namespace": ns, "labels": {"app": app}},
        "spec": spec,
    }


def policy(name: str, ns: str, app: str, sources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name, "annotations": {ANNOTATION: "true"}},
        "spec": {
            "description": f"internet access to {ns}/{app}",
            "endpointSelector": {
                "matchLabels": {"app": app, "k8s:io.kubernetes.pod.namespace": ns}
            },
            "ingress": [
                {
                    "fromCIDR": sources,
                    "toPorts": [
                        {
                            "ports": [
                                {"port": str(port), "protocol": proto}
                                for proto, port in POLICY_PORTS
                            ]
                        }
                    ],
                }
            ],
        },
    }


def lb_ip(i: int) -> str:
    return f"172.20.{i // 250}.{i % 250 + 1}"


def build_scenario(f: float) -> Scenario:
    policies, pods, services = round(300 * f), round(3000 * f), round(600 * f)
    namespaces = [f"team-{k:02d}" for k in range(max(1, round(10 * f)))]
    sc = Scenario(f, policies, pods, services, namespaces)
    objs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ns in namespaces:
        objs["namespaces"].append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {}}}
        )
    number = 0
    for i in range(policies):
        ns, app = sc.policy_ns(i), f"web-{i:04d}"
        for k in range(PODS_PER_POLICY):
            objs["pods"].append(pod(ns, app, k, number % 50 + 1))
            number += 1
        objs["lb_services"].append(service(ns, app, "LoadBalancer", POLICY_PORTS))
        objs["policies"].append(policy(f"expose-{app}", ns, app, sources(i)))
    others = services - policies
    for j in range(others):
        ns, app = namespaces[j % len(namespaces)], f"svc-{j:04d}"
        kind = "LoadBalancer" if j < others // 3 else "ClusterIP"
        for k in range(PODS_PER_OTHER):
            if number < pods:
                objs["pods"].append(pod(ns, app, k, number % 50 + 1))
                number += 1
        target = "lb_services" if kind == "LoadBalancer" else "services"
        objs[target].append(service(ns, app, kind, (("TCP", 8080),)))
    while number < pods:  # pods of no Service (jobs, daemons)
        ns = namespaces[number % len(namespaces)]
        objs["pods"].append(pod(ns, f"worker-{number:05d}", 0, number % 50 + 1))
        number += 1
    sc.objects = dict(objs)
    return sc


def write_snapshot(sc: Scenario, path: Path) -> None:
    """The scenario as `kubectl get -o yaml` would print it (for `--from-file`)."""
    items = []
    for n, pod in enumerate(sc.objects["pods"]):
        items.append({**pod, **pod_status(pod, n)})
    for i, service in enumerate(sc.objects["lb_services"]):
        ingress = {"status": {"loadBalancer": {"ingress": [{"ip": lb_ip(i)}]}}}
        items.append({**service, **ingress})
    items += sc.objects.get("services", []) + sc.objects["policies"] + sc.objects["namespaces"]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
