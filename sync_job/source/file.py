"""`--from-file`: a ClusterSnapshot read from YAML instead of the API server.

Accepts multi-document YAML and `kind: List` documents (what `kubectl get ccnp,svc,pod -A -o
yaml` prints). Kinds other than CiliumClusterwideNetworkPolicy, CiliumCIDRGroup, Service, Pod and
Namespace are ignored with a log line. Policies need the annotation here too, exactly as in the
cluster.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from sync_job.errors import SourceError
from sync_job.source.snapshot import (
    CidrGroup,
    ClusterSnapshot,
    cidr_group_from_raw,
    is_annotated,
    pod_from_raw,
    service_from_raw,
)

log = logging.getLogger(__name__)
# libyaml's safe loader when PyYAML was built with it: about 4x faster on large files.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _objects(documents: list[Any], path: Path) -> Iterator[Mapping[str, Any]]:
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, Mapping):
            raise SourceError(f"{path}: document {index + 1} is not a mapping")
        if str(document.get("kind", "")).endswith("List") and "items" in document:
            items = document.get("items") or []
            if not isinstance(items, list):
                raise SourceError(f"{path}: document {index + 1}: items is not a list")
            yield from (item for item in items if isinstance(item, Mapping))
        else:
            yield document


# Fields the snapshot reads as mappings. A policy's spec is left to the policy's own validation,
# which names the field in that policy's status instead of failing the whole file.
_MAPPINGS = {
    "CiliumClusterwideNetworkPolicy": ("metadata", "metadata.annotations"),
    "Pod": ("metadata", "metadata.labels", "spec", "status"),
    "Service": ("metadata", "spec", "spec.selector", "status", "status.loadBalancer"),
    "Namespace": ("metadata", "metadata.labels"),
    "CiliumCIDRGroup": ("metadata", "metadata.labels", "spec"),
}


def _check_shape(obj: Mapping[str, Any], where: str) -> None:
    for dotted in _MAPPINGS.get(str(obj.get("kind")), ()):
        value: Any = obj
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None and not isinstance(value, Mapping):
            raise SourceError(f"{where}: {dotted} is not a mapping ({type(value).__name__})")


def load_snapshot(path: Path) -> ClusterSnapshot:
    """The snapshot in the YAML at `path`; `-` is standard input."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise SourceError(f"{path} is not UTF-8 text (byte {error.start})") from None
    try:
        documents = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as error:
        raise SourceError(f"{path} is not valid YAML: {error}") from None
    policies, pods, services = [], [], []
    namespaces: dict[str, dict[str, str]] = {}
    groups: dict[str, CidrGroup] = {}
    for number, obj in enumerate(_objects(documents, path), start=1):
        kind = obj.get("kind")
        _check_shape(obj, f"{path}: object {number} ({kind})")
        if kind == "CiliumClusterwideNetworkPolicy":
            if is_annotated(obj):
                policies.append(obj)
        elif kind == "Pod":
            pods.append(pod_from_raw(obj))
        elif kind == "Service":
            services.append(service_from_raw(obj))
        elif kind == "CiliumCIDRGroup":
            group = cidr_group_from_raw(obj)
            groups[group.name] = group
        elif kind == "Namespace":
            meta = obj.get("metadata") or {}
            namespaces[str(meta.get("name"))] = dict(meta.get("labels") or {})
        else:
            log.info("%s: ignoring %s %s", path, kind, (obj.get("metadata") or {}).get("name"))
    return ClusterSnapshot(
        policies, pods, services, namespaces, router_policies=None, cidr_groups=groups
    )
