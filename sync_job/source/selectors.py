"""Cilium endpoint selectors: parsing them from a policy, and matching them against pod labels.

Owns the rules of cilium.md §2: label-source prefixes (`k8s:`, `any:`, `reserved:`, ...), the four
set-based operators, the labels Cilium gives a pod's endpoint (special `io.kubernetes.*` and
`io.cilium.k8s.*` labels, the default identity-relevant label exclusions), and the wording of
validation errors ("<owner>: <field path> <value> <problem>"), which `sync_job.source.cilium` and
`sync_job.source.discovery` reuse.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sync_job.model import PolicyError, Reason
from sync_job.source.snapshot import Pod

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
POD_SOURCES = frozenset({"k8s", "any"})  # label sources a selector key can use to see pod labels

NAMESPACE_KEY = "io.kubernetes.pod.namespace"
SERVICE_ACCOUNT_KEY = "io.cilium.k8s.policy.serviceaccount"
CLUSTER_KEY = "io.cilium.k8s.policy.cluster"
NAMESPACE_LABELS_PREFIX = "io.cilium.k8s.namespace.labels."
UNSPOOFABLE_PREFIX = "io.cilium.k8s"
EXCLUDED_PREFIXES = (  # Cilium's default identity-relevant label exclusions (cilium.md §2.3)
    "io.kubernetes",
    "kubernetes.io",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/job-completion-index",
    "batch.kubernetes.io/controller-uid",
    "beta.kubernetes.io",
    "k8s.io",
    "pod-template-generation",
    "pod-template-hash",
    "controller-revision-hash",
    "annotation.",
    "controller-uid",
    "etcd_node",
)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement. `key` has no source prefix; `on_pods` is False for keys whose source
    (`reserved:`, `container:`, ...) pods never carry, which therefore count as absent."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    on_pods: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key) if self.on_pods else None
        if self.operator == "In":
            return value is not None and value in self.values
        if self.operator == "NotIn":
            return value is None or value not in self.values
        if self.operator == "Exists":
            return value is not None
        return value is None  # DoesNotExist


@dataclass(frozen=True, slots=True)
class EndpointSelector:
    """A parsed selector: all requirements must hold; none at all (`{}`) selects every pod.
    `path` is where it came from (e.g. `specs[1].endpointSelector`), for messages only."""

    requirements: tuple[Requirement, ...] = ()
    path: str = dataclasses.field(default="", compare=False)


def describe(value: Any) -> str:
    """A value as it appears in a message: JSON-quoted, shortened when long."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def field_error(owner: str, path: str, value: Any, problem: str) -> PolicyError:
    """ValidationFailed naming the object, the field path and the offending value."""
    return PolicyError(Reason.VALIDATION_FAILED, f"{owner}: {path} {describe(value)} {problem}")


def parse_selector(raw: Any, field: str, owner: str) -> EndpointSelector:
    """Parse an endpointSelector/nodeSelector; any malformed part raises ValidationFailed."""
    if not isinstance(raw, Mapping):
        raise field_error(owner, field, raw, "is not a label selector (a mapping)")
    requirements = [
        *_parse_match_labels(raw.get("matchLabels"), f"{field}.matchLabels", owner),
        *_parse_match_expressions(raw.get("matchExpressions"), f"{field}.matchExpressions", owner),
    ]
    return EndpointSelector(tuple(requirements), field)


def _parse_match_labels(raw: Any, path: str, owner: str) -> list[Requirement]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise field_error(owner, path, raw, "is not a mapping of label keys to values")
    requirements = []
    for key, value in raw.items():
        key_path = f"{path}[{describe(key)}]"
        if not isinstance(value, str):
            raise field_error(owner, key_path, value, "is not a string (quote label values)")
        requirements.append(_requirement(key, "In", (value,), key_path, owner))
    return requirements


def _parse_match_expressions(raw: Any, path: str, owner: str) -> list[Requirement]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise field_error(owner, path, raw, "is not a list")
    return [_parse_expression(entry, f"{path}[{i}]", owner) for i, entry in enumerate(raw)]


def _parse_expression(raw: Any, path: str, owner: str) -> Requirement:
    if not isinstance(raw, Mapping):
        raise field_error(owner, path, raw, "is not a mapping with key, operator and values")
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise field_error(
            owner, f"{path}.operator", operator, "is not In, NotIn, Exists or DoesNotExist"
        )
    values = raw.get("values")
    values_path = f"{path}.values"
    if operator in ("In", "NotIn"):
        if not isinstance(values, list) or not values:
            raise field_error(
                owner, values_path, values, f"must be a non-empty list for {operator}"
            )
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise field_error(owner, f"{values_path}[{i}]", value, "is not a string")
    elif values not in (None, []):
        raise field_error(owner, values_path, values, f"must be empty for {operator}")
    return _requirement(raw.get("key"), operator, tuple(values or ()), f"{path}.key", owner)


def _requirement(
    raw_key: Any, operator: str, values: tuple[str, ...], path: str, owner: str
) -> Requirement:
    if not isinstance(raw_key, str) or not raw_key:
        raise field_error(owner, path, raw_key, "is not a non-empty label key")
    source, key = split_key(raw_key)
    if not key:
        raise field_error(owner, path, raw_key, "has no label key after its source prefix")
    return Requirement(key, operator, tuple(sorted(set(values))), source in POD_SOURCES)


def split_key(raw_key: str) -> tuple[str, str]:
    """(source, key) the way Cilium reads a selector key: the source is the text before the first
    `:` (`any` when there is none or it is empty); `$host` is short for `reserved:host`."""
    if raw_key.startswith("$"):
        return "reserved", raw_key[1:]
    source, colon, key = raw_key.partition(":")
    if not colon:
        return "any", raw_key
    return source or "any", key


def endpoint_labels(
    pod: Pod, namespace_labels: Mapping[str, Mapping[str, str]], cluster_name: str = "default"
) -> dict[str, str]:
    """The labels Cilium's selectors see on a pod's endpoint (cilium.md §2.3)."""
    labels = {
        key: value
        for key, value in pod.labels.items()
        if not key.startswith(UNSPOOFABLE_PREFIX) and not key.startswith(EXCLUDED_PREFIXES)
    }
    labels[NAMESPACE_KEY] = pod.namespace
    for key, value in (namespace_labels.get(pod.namespace) or {}).items():
        labels[NAMESPACE_LABELS_PREFIX + key] = value
    if pod.service_account:
        labels[SERVICE_ACCOUNT_KEY] = pod.service_account
    labels[CLUSTER_KEY] = cluster_name
    return labels


def matches(selector: EndpointSelector, labels: Mapping[str, str]) -> bool:
    """Whether endpoint labels (see `endpoint_labels`) satisfy every requirement of the selector."""
    return all(requirement.matches(labels) for requirement in selector.requirements)
