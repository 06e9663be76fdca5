"""The pull-request preview through the command, against the RouterOS emulator on 127.0.0.1:
`--policies-from` (files, directories, standard input) in place of the cluster's policies,
`--from-file -`, and `--output markdown` pinned by a golden file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.support.fleet import NAMES, cluster_file, four, policy, workload
from tests.support.router import Result, Router, run_cli

GOLDEN = Path(__file__).resolve().parent / "golden"


def sync(router: Router, *extra: str, stdin: str | None = None) -> Result:
    return run_cli("sync", "--mikrotik-base-url", router.url, *extra, stdin=stdin)


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{name} differs from its golden (UPDATE_GOLDEN=1 rewrites)"


def write(path: Path, *documents: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents))
    return path


@pytest.fixture
def live(router: Router, tmp_path: Path) -> Path:
    """The four policies synced; the file stands for the live cluster from here on."""
    path = four(tmp_path / "live.yaml")
    result = sync(router, "--from-file", str(path))
    assert result.code == 0, result.stdout + result.stderr
    router.emulator.reset_counts()
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A GitOps checkout: the four policies in nested folders, p2 edited (one source more),
    among files that are neither policies nor groups."""
    root = tmp_path / "repo"
    write(root / "policies" / "p1.yaml", policy("p1"))
    edited = policy("p2", ["203.0.113.2/32", "203.0.113.99/32"])
    write(root / "policies" / "team" / "p2.yml", edited, policy("p3"))
    write(
        root / "policies" / "list.yaml",
        {"apiVersion": "v1", "kind": "List", "items": [policy("p4")]},
    )
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    write(root / "apps" / "web.yaml", deployment, *workload("p1"))  # skipped: not policies
    (root / "apps" / "values.yaml").write_text("- a list\n- of values\n")  # not a mapping
    (root / "README.md").write_text("not yaml: {{ }}\n")  # not *.yaml: never read
    return root


def test_an_edited_policy_in_a_directory_gives_drift_and_only_reads(
    router: Router, live: Path, checkout: Path
) -> None:
    result = sync(router, "--check", "--from-file", str(live), "--policies-from", str(checkout))
    assert result.code == 2, result.stdout + result.stderr
    assert "+ ipv4 address-list router-policy-sync::p2 203.0.113.99" in result.stdout
    assert "Plan: 1 to create, 0 to update, 0 to move, 0 to delete." in result.stdout
    assert {method for method, _ in router.emulator.requests} == {"GET"}
    shown = markdown(router, live, checkout)
    assert shown.code == 2 and "Exit code **2**: drift" in shown.stdout, shown.stdout
    assert "**Drift**: router: 1 +, 0 ~, 0 ↕, 0 -." in shown.stdout
    assert "| `p2` | 1 | 0 | 0 | 0 | ✅ Synced" in shown.stdout
    # --from-file stands for the cluster: nothing is ever written to it either
    assert live.read_text() == four(live.parent / "again.yaml").read_text()

    unchanged = checkout / "policies"
    (unchanged / "team" / "p2.yml").write_text(yaml.safe_dump_all([policy("p2"), policy("p3")]))
    result = sync(router, "--check", "--from-file", str(live), "--policies-from", str(unchanged))
    assert result.code == 0, result.stdout + result.stderr
    assert "In sync." in result.stdout


def test_the_documents_replace_the_clusters_policies(
    router: Router, live: Path, tmp_path: Path
) -> None:
    """A policy only in the cluster file is not read when --policies-from is given, and a
    policy that is un-annotated in the checkout is removed by the preview."""
    path = write(
        tmp_path / "pr.yaml",
        *(policy(n) for n in ("p1", "p2", "p3")),
        policy("p4", annotated=False),
    )
    result = sync(router, "--check", "--from-file", str(live), "--policies-from", str(path))
    assert result.code == 2, result.stdout
    assert (
        "- ipv4 address-list router-policy-sync::p4 203.0.113.4 (no longer wanted)" in result.stdout
    )
    # several --policies-from are read together; one name in two of them is refused
    three = write(tmp_path / "three.yaml", *(policy(n) for n in ("p1", "p2", "p3")))
    extra = write(tmp_path / "p4.yaml", policy("p4"))
    both = ("--policies-from", str(three), "--policies-from", str(extra))
    result = sync(router, "--check", "--from-file", str(live), *both)
    assert result.code == 0, result.stdout + result.stderr
    result = sync(router, "--check", "--from-file", str(live), *both, "--policies-from", str(path))
    assert result.code == 64, result.stdout + result.stderr
    assert f"'p1' is in both {three} and {path}" in result.stderr


def test_policies_from_is_refused_without_check(router: Router, live: Path, checkout: Path) -> None:
    result = sync(router, "--from-file", str(live), "--policies-from", str(checkout))
    assert result.code == 64, result.stdout + result.stderr
    assert "--policies-from is allowed only with --check" in result.stderr
    assert sum(router.emulator.requests.values()) == 0


def test_unparseable_yaml_is_a_usage_error_naming_the_file(
    router: Router, live: Path, checkout: Path
) -> None:
    broken = checkout / "apps" / "chart" / "templates" / "svc.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("metadata:\n  name: {{ .Release.Name }\n")
    result = sync(router, "--check", "--from-file", str(live), "--policies-from", str(checkout))
    assert result.code == 64, result.stdout + result.stderr
    assert f"{broken} is not valid YAML" in result.stderr
    assert sum(router.emulator.requests.values()) == 0  # refused before the router is read
    missing = sync(router, "--check", "--from-file", str(live), "--policies-from", "nope/")
    assert missing.code == 64 and "--policies-from nope/: no such file" in missing.stderr


def test_standard_input_for_policies_and_for_the_cluster(router: Router, live: Path) -> None:
    edited = yaml.safe_dump_all(
        [policy(n) for n in ("p1", "p3", "p4")] + [policy("p2", ["203.0.113.99/32"])]
    )
    result = sync(router, "--check", "--from-file", str(live), "--policies-from", "-", stdin=edited)
    assert result.code == 2, result.stdout + result.stderr
    assert "+ ipv4 address-list router-policy-sync::p2 203.0.113.99" in result.stdout
    assert (
        "- ipv4 address-list router-policy-sync::p2 203.0.113.2 (no longer wanted)" in result.stdout
    )

    cluster = live.read_text()
    result = sync(router, "--check", "--from-file", "-", stdin=cluster)
    assert result.code == 0, result.stdout + result.stderr
    assert "In sync." in result.stdout
    only_p1 = cluster_file(live.parent / "p1.yaml", policy("p1")).read_text()
    result = sync(router, "--check", "--from-file", "-", stdin=only_p1)  # the guard, from stdin
    assert result.code == 1 and "a run would hold back the removal of 3" in result.stdout

    both = sync(router, "--check", "--from-file", "-", "--policies-from", "-", stdin=cluster)
    assert both.code == 64 and "cannot both read standard input" in both.stderr


def markdown(router: Router, live: Path, policies: Path, *extra: str) -> Result:
    return sync(
        router, "--check", "--output", "markdown", "--from-file", str(live),
        "--policies-from", str(policies), *extra,
    )  # fmt: skip


def test_markdown_preview_matches_its_golden(router: Router, live: Path, tmp_path: Path) -> None:
    """An edited policy (create and delete), a removed one (1 of 4: it proceeds) and one that
    fails validation (it keeps what it has), with a `|`, `<` and backticks in its message."""
    pr = write(
        tmp_path / "pr.yaml",
        policy("p2", ["203.0.113.2/32", "203.0.113.98/32"]),
        policy("p3", ["${P3_SOURCE}|<b>`x`</b>"]),
        policy("p4", ["203.0.113.40/32"]),
    )
    result = markdown(router, live, pr)
    # a failure wins over drift: p3 cannot be synced, so a run would exit 1
    assert result.code == 1 and "Exit code **1**" in result.stdout, result.stdout
    assert_golden("preview.md", result.stdout)
    assert {method for method, _ in router.emulator.requests} == {"GET"}


def test_markdown_of_a_held_back_removal_matches_its_golden(
    router: Router, live: Path, tmp_path: Path
) -> None:
    pr = write(tmp_path / "pr.yaml", policy("p4"))
    result = markdown(router, live, pr)
    assert result.code == 1 and "Exit code **1**" in result.stdout, result.stdout
    assert_golden("preview-held-back.md", result.stdout)
    in_sync = markdown(router, live, write(tmp_path / "all.yaml", *(policy(n) for n in NAMES)))
    assert in_sync.code == 0 and "Exit code **0**" in in_sync.stdout
    assert "**In sync**: no router changes." in in_sync.stdout
