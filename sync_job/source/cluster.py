"""The live cluster read: one list per kind, reduced to a ClusterSnapshot page by page.

The pod list is the largest read of a pass, so it is kept to what selection needs:

- finished pods are left out server-side (field selector on `status.phase`);
- pods are read as metadata only (`PartialObjectMetadataList`: name, namespace, labels), about
  half the bytes of full pods, unless an annotated policy mentions the service-account label
  (`io.cilium.k8s.policy.serviceaccount`), the one selector key that needs `spec`;
- lists are read in pages (`KubeClient.collect`) and each page's items are reduced to the
  snapshot's small `Pod`/`Service` records as it arrives, so peak memory is one decoded page,
  not the several times larger tree of every pod's `managedFields`.

Namespaces, whose labels are all a pass needs of them, are read as metadata only as well.
Every failure is a SourceError naming the list, raised before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sync_job.kubeapi import (
    CIDR_GROUPS,
    CIDR_GROUPS_V2ALPHA1,
    CILIUM_POLICIES,
    LIVE_PODS,
    NAMESPACES,
    PODS,
    ROUTER_POLICIES,
    SERVICES,
    KubeClient,
    NotServed,
)
from sync_job.source.documents import PolicyDocuments, with_known_generations
from sync_job.source.selectors import SERVICE_ACCOUNT_KEY
from sync_job.source.snapshot import (
    CidrGroup,
    ClusterSnapshot,
    Pod,
    Service,
    cidr_group_from_raw,
    is_annotated,
    pod_from_raw,
    service_from_raw,
)


def _mentions_service_account(policies: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any policy could select on the service-account label, which needs pod specs.

    Selectors live in `spec` and `specs`, and a selector key equal to the label (with or without
    a source prefix) contains it as text: rules that do not contain it anywhere cannot select on it.
    """
    return any(
        SERVICE_ACCOUNT_KEY in json.dumps([policy.get("spec"), policy.get("specs")])
        for policy in policies
    )


def _needs_pod_specs(policies: Sequence[Mapping[str, Any]], services: Sequence[Service]) -> bool:
    """Pod specs are read only when something needs them: a selector on the service-account
    label, or a policy limiting ports (`toPorts`) while a LoadBalancer Service targets a port by
    name (resolved through the pods' container ports). Otherwise metadata is enough."""
    if _mentions_service_account(policies):
        return True
    named = any(
        isinstance(entry, Mapping)
        and isinstance(entry.get("targetPort"), str)
        and not entry["targetPort"].isdigit()
        for service in services
        if service.type == "LoadBalancer"
        for entry in service.ports
    )
    return named and any(
        '"toPorts"' in json.dumps([policy.get("spec"), policy.get("specs")]) for policy in policies
    )


def _references_groups(policies: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any policy's rules mention `cidrGroupRef` or `cidrGroupSelector` (as text, like
    `_mentions_service_account`): only then are CiliumCIDRGroups read."""
    return any(
        '"cidrGroup' in json.dumps([policy.get("spec"), policy.get("specs")]) for policy in policies
    )


def read_cidr_groups(kube: KubeClient) -> dict[str, CidrGroup] | None:
    """Every CiliumCIDRGroup by name, from `v2`, else `v2alpha1` (all Cilium 1.15 to 1.17
    serve); None when neither is served (the CRD is not installed)."""
    for path in (CIDR_GROUPS, CIDR_GROUPS_V2ALPHA1):
        try:
            groups = kube.collect(path, "CiliumCIDRGroups", cidr_group_from_raw)
        except NotServed:
            continue
        return {group.name: group for group in groups}
    return None


def _running_pod(raw: Any) -> Pod:
    """The field selector asked for running pods only; a metadata-only item has no status."""
    return replace(pod_from_raw(raw), phase="Running")


def _annotated(policy: Any) -> Any:
    return policy if is_annotated(policy) else None


def _named(item: Any) -> tuple[str, Any]:
    return str(item["metadata"]["name"]), item


def _namespace_labels(namespace: Any) -> tuple[str, dict[str, str]]:
    meta = namespace["metadata"]
    return str(meta["name"]), dict(meta.get("labels") or {})


def read_snapshot(kube: KubeClient, documents: PolicyDocuments | None = None) -> ClusterSnapshot:
    """The cluster as one pass needs it: five lists, whatever the number of policies, and a sixth
    (CiliumCIDRGroups) when a policy references groups. With `documents` (`--policies-from`),
    their policies and groups replace the cluster's, whose lists of them are not read."""
    if documents is None:
        policies = kube.collect(CILIUM_POLICIES, "CiliumClusterwideNetworkPolicies", _annotated)
        groups = read_cidr_groups(kube) if _references_groups(policies) else {}
    else:
        policies, groups = list(documents.policies), dict(documents.cidr_groups)
    router_policies = dict(kube.collect(ROUTER_POLICIES, "RouterPolicies", _named))
    if documents is not None:
        policies = with_known_generations(policies, router_policies)
    services = kube.collect(SERVICES, "services", service_from_raw)
    pod_query = {"fieldSelector": LIVE_PODS}
    need_specs = _needs_pod_specs(policies, services)
    pods = kube.collect(PODS, "pods", _running_pod, pod_query, metadata_only=not need_specs)
    namespace_labels = dict(
        kube.collect(NAMESPACES, "namespaces", _namespace_labels, metadata_only=True)
    )
    return ClusterSnapshot(
        policies=policies,
        pods=pods,
        services=services,
        namespace_labels=namespace_labels,
        router_policies=router_policies,
        cidr_groups=groups,
    )
