"""The RouterPolicy and Event writes, each failure a KubeWriteError naming the object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync_job.errors import KubeWriteError
from sync_job.kubeapi import GROUP, ROUTER_POLICIES, KubeClient, KubeRequestFailed, events_path


class RouterPolicyWriter:
    """Creates and deletes RouterPolicy objects, patches their status, records their Events."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    def create(self, policy: Mapping[str, Any]) -> Mapping[str, Any]:
        meta = policy["metadata"]
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "RouterPolicy",
            "metadata": {
                "name": meta["name"],
                "labels": {"app.kubernetes.io/managed-by": "router-policy-sync"},
                "ownerReferences": [
                    {
                        "apiVersion": "cilium.io/v2",
                        "kind": "CiliumClusterwideNetworkPolicy",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {},
        }
        try:
            created: Mapping[str, Any] = self._kube.call("POST", ROUTER_POLICIES, body=body)
        except KubeRequestFailed as error:
            raise KubeWriteError(f"cannot create RouterPolicy {meta['name']}: {error}") from None
        return created

    def delete(self, name: str, uid: str) -> None:
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            self._kube.call("DELETE", f"{ROUTER_POLICIES}/{name}", body=body)
        except KubeRequestFailed as error:
            if error.status == 404:
                return
            raise KubeWriteError(f"cannot delete RouterPolicy {name}: {error}") from None

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        try:
            self._kube.call(
                "PATCH",
                f"{ROUTER_POLICIES}/{name}/status",
                body={"status": dict(status)},
                content_type="application/merge-patch+json",
            )
        except KubeRequestFailed as error:
            raise KubeWriteError(f"cannot write status of RouterPolicy {name}: {error}") from None

    def create_event(self, body: Mapping[str, Any]) -> None:
        try:
            self._kube.call("POST", events_path(body["metadata"]["namespace"]), body=dict(body))
        except KubeRequestFailed as error:
            name = body["involvedObject"]["name"]
            raise KubeWriteError(
                f"cannot record an Event on RouterPolicy {name}: {error}"
            ) from None
