"""End-to-end against the session's kube-apiserver: the mass-removal guard (CCNPs deleted for
real, their router and RouterPolicy objects held back until `--allow-mass-removal`) and the
pull-request preview (`--check --policies-from` a checkout, Markdown out, nothing written to the
router or to the cluster)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.e2e.test_sync_e2e import (
    ANNOTATION,
    CCNPS,
    TABLES,
    Cluster,
    _spec,
    cluster,  # the fixture, re-exported below
    explain,
    of_policy,
)
from tests.support.router import Router

__all__ = ["cluster"]


def document(
    cluster: Cluster, name: str, sources: list[str], app: str = "web"
) -> dict[str, object]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name, "annotations": {ANNOTATION: "true"}},
        "spec": _spec(cluster.ns, app, sources),
    }


def owns(router: Router, name: str) -> bool:
    return any(of_policy(router, name).values())


def test_deleting_three_of_four_policies_is_held_back_until_allowed(
    cluster: Cluster, router: Router
) -> None:
    names = [cluster.name(f"g{n}") for n in range(1, 5)]
    cluster.workload("web", "192.0.2.60")
    for number, name in enumerate(names, start=1):
        cluster.policy(name, [f"203.0.113.{60 + number}/32"], "web")
    result = cluster.sync()
    assert result.code == 0, explain(result)
    gone, kept = names[:3], names[3]
    for name in gone:
        cluster.custom.delete_cluster_custom_object(*CCNPS, name)

    rows = [router.emulator.rows(t) for t in TABLES]
    check = cluster.sync("--check")
    assert check.code == 1, explain(check)
    assert "a run would hold back the removal of 3 of the 4 policies" in check.stdout
    assert [router.emulator.rows(t) for t in TABLES] == rows

    held = cluster.sync()
    assert held.code == 1, explain(held)
    assert "--allow-mass-removal" in held.stderr
    assert all(owns(router, name) for name in names)
    assert all(cluster.rp(name) is not None for name in gone)  # RouterPolicies kept too
    assert cluster.ready(kept)["reason"] == "Synced"

    allowed = cluster.sync("--allow-mass-removal")
    assert allowed.code == 0, explain(allowed)
    assert [owns(router, name) for name in names] == [False, False, False, True]
    assert all(cluster.rp(name) is None for name in gone)


def test_a_pull_request_preview_reads_the_checkout_and_writes_nothing(
    cluster: Cluster, router: Router, tmp_path: Path
) -> None:
    edited, same, new = (cluster.name(p) for p in ("edited", "same", "new"))
    cluster.workload("web", "192.0.2.70")
    cluster.policy(edited, ["203.0.113.71/32"], "web")
    cluster.policy(same, ["203.0.113.72/32"], "web")
    assert cluster.sync().code == 0

    checkout = tmp_path / "repo" / "policies"
    (checkout / "nested").mkdir(parents=True)
    (checkout / "edited.yaml").write_text(
        yaml.safe_dump(document(cluster, edited, ["203.0.113.71/32", "203.0.113.99/32"]))
    )
    group = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumCIDRGroup",
        "metadata": {"name": cluster.name("group")},
        "spec": {"externalCIDRs": ["198.51.100.77/32"]},
    }
    uses_group = document(cluster, new, [])
    uses_group["spec"] = {  # type: ignore[index]
        **_spec(cluster.ns, "web", []),
        "ingress": [{"fromCIDRSet": [{"cidrGroupRef": cluster.name("group")}]}],
    }
    (checkout / "nested" / "more.yml").write_text(
        yaml.safe_dump_all([document(cluster, same, ["203.0.113.72/32"]), uses_group, group])
    )
    (checkout / "nested" / "deploy.yaml").write_text(
        yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})
    )

    versions, rows = cluster.versions(), [router.emulator.rows(t) for t in TABLES]
    router.emulator.reset_counts()
    result = cluster.sync("--check", "--policies-from", str(checkout), "--output", "markdown")
    assert result.code == 2, explain(result)
    assert {method for method, _ in router.emulator.requests} == {"GET"}
    assert [router.emulator.rows(t) for t in TABLES] == rows
    assert cluster.versions() == versions
    assert cluster.rp(new) is None

    out = result.stdout
    assert out.startswith("<!-- router-policy-sync plan -->")
    assert f"+ ipv4 address-list router-policy-sync::{edited} 203.0.113.99" in out
    assert (
        f"+ ipv4 address-list router-policy-sync::{new} 198.51.100.77" in out
    )  # the checkout's group
    assert f"+ routerpolicy {new}" in out
    assert f"| `{same}` | 0 | 0 | 0 | 0 | ✅ Synced" in out
    assert f"routerpolicy {same}" not in out  # its observedGeneration is the RouterPolicy's
    assert "Exit code **2**: drift" in out
