"""`--policies-from`: the policies and CIDR groups of a checkout, in place of the cluster's.

Reads YAML files, directories (recursively, `*.yaml` and `*.yml`, in path order) and `-`
(standard input), multi-document and `kind: List` alike. The CiliumClusterwideNetworkPolicy and
CiliumCIDRGroup documents found replace the cluster's listing of those two kinds (everything else
is still read live or from `--from-file`): the plan is what merging the pull request would do.
Other kinds, and documents that are not mappings, are skipped (a GitOps repository holds much
else). A file that cannot be read or parsed is a ConfigError naming it (exit 64), as is one
object name given twice: a cluster holds one object per name.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from sync_job.errors import ConfigError, SourceError
from sync_job.source.file import _check_shape
from sync_job.source.snapshot import CidrGroup, ClusterSnapshot, cidr_group_from_raw, is_annotated

log = logging.getLogger(__name__)
STDIN = "-"
POLICY, GROUP = "CiliumClusterwideNetworkPolicy", "CiliumCIDRGroup"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class PolicyDocuments:
    """What `--policies-from` found: the annotated policies (raw, as the cluster lists them)
    and the CIDR groups by name, and the files read."""

    policies: Sequence[Mapping[str, Any]] = ()
    cidr_groups: Mapping[str, CidrGroup] = field(default_factory=dict)
    files: Sequence[str] = ()


def _files(spec: str) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()]
        return sorted(found)
    if path.is_file():
        return [path]
    raise ConfigError(f"--policies-from {spec}: no such file or directory")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"--policies-from: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        where = f"{path} is not UTF-8 text (byte {error.start})"
        raise ConfigError(f"--policies-from: {where}") from None


def _objects(text: str, where: str) -> Iterator[Mapping[str, Any]]:
    try:
        documents = list(yaml.load_all(text, Loader=_LOADER))
    except yaml.YAMLError as error:
        raise ConfigError(f"--policies-from: {where} is not valid YAML: {error}") from None
    for document in documents:
        if not isinstance(document, Mapping):
            continue  # a scalar, a list, an empty document: nothing a cluster would hold
        items = document.get("items")
        if str(document.get("kind", "")).endswith("List") and isinstance(items, list):
            yield from (item for item in items if isinstance(item, Mapping))
        else:
            yield document


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


def read_documents(specs: Iterable[str], stdin: TextIO | None = None) -> PolicyDocuments:
    """Every policy and CIDR group in `specs` (paths, or `-` for `stdin`)."""
    sources: list[tuple[str, str]] = []
    for spec in specs:
        if spec == STDIN:
            sources.append(("standard input", (stdin or sys.stdin).read()))
        else:
            sources += [(str(path), _text(path)) for path in _files(spec)]
    policies: dict[str, tuple[str, Mapping[str, Any]]] = {}
    groups: dict[str, tuple[str, CidrGroup]] = {}
    for where, text in sources:
        for obj in _objects(text, where):
            kind, name = obj.get("kind"), _name(obj)
            if kind not in (POLICY, GROUP):
                continue
            try:
                _check_shape(obj, f"{where}: {kind} {name}")
            except SourceError as error:
                raise ConfigError(f"--policies-from: {error}") from None
            seen = policies if kind == POLICY else groups
            if name in seen:
                raise ConfigError(
                    f"--policies-from: {kind} {name!r} is in both {seen[name][0]} and {where}"
                )
            if kind == POLICY:
                policies[name] = (where, obj)
            else:
                groups[name] = (where, cidr_group_from_raw(obj))
    log.info(
        "--policies-from: %d policies and %d CIDR groups from %d files",
        len(policies), len(groups), len(sources),
    )  # fmt: skip
    return PolicyDocuments(
        policies=[obj for _, obj in policies.values() if is_annotated(obj)],
        cidr_groups={name: group for name, (_, group) in groups.items()},
        files=[where for where, _ in sources],
    )


def with_known_generations(
    policies: Sequence[Mapping[str, Any]], router_policies: Mapping[str, Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """A document has no `metadata.generation` until the API server stores it; the preview
    takes the one its RouterPolicy last observed, so an unchanged policy shows no status drift
    (a changed one gets its new generation when it is applied, which no preview can know)."""
    known = []
    for policy in policies:
        meta = policy.get("metadata") or {}
        status = (router_policies.get(_name(policy)) or {}).get("status") or {}
        observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
        if "generation" not in meta and type(observed) is int:
            policy = {**policy, "metadata": {**meta, "generation": observed}}
        known.append(policy)
    return known


def replacing(snapshot: ClusterSnapshot, documents: PolicyDocuments) -> ClusterSnapshot:
    """`snapshot` (a ClusterSnapshot, e.g. from `--from-file`) with the documents' policies
    and CIDR groups in place of its own."""
    return replace(
        snapshot, policies=list(documents.policies), cidr_groups=dict(documents.cidr_groups)
    )
