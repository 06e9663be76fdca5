"""`--policies-from` reading (sync_job.source.documents): what is taken, what is skipped, what is
refused, and the generation a preview gives a document."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sync_job.errors import ConfigError
from sync_job.source.documents import read_documents, with_known_generations

ANNOTATED = "annotations: {router-policy-sync.homelab-helper.benfiola.com/sync-with-router: 'true'}"


def ccnp(name: str, annotated: bool = True) -> str:
    meta = f"{{name: {name}, {ANNOTATED}}}" if annotated else f"{{name: {name}}}"
    return f"apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {meta}\n"


GROUP = (
    "kind: CiliumCIDRGroup\nmetadata: {name: g, labels: {a: b}}\n"
    "spec: {externalCIDRs: [198.51.100.1/32]}\n"
)


def test_policies_groups_lists_and_stdin_are_read_and_the_rest_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ccnp("a") + "---\n" + GROUP + "---\n- not\n- a mapping\n")
    (tmp_path / "b.yml").write_text(
        "kind: List\nitems:\n- " + ccnp("b").replace("\n", "\n  ") + "\n"
    )
    (tmp_path / "c.yaml").write_text(ccnp("c", annotated=False) + "---\nkind: Service\n")
    stdin = io.StringIO(ccnp("d"))
    found = read_documents([str(tmp_path), "-"], stdin=stdin)
    assert [p["metadata"]["name"] for p in found.policies] == ["a", "b", "d"]
    assert found.cidr_groups["g"].cidrs == ["198.51.100.1/32"]
    assert found.cidr_groups["g"].labels == {"a": "b"}
    assert found.files[-1] == "standard input"


def test_a_name_twice_and_broken_yaml_are_refused_naming_the_files(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(ccnp("a"))
    (tmp_path / "two.yaml").write_text(ccnp("a"))
    with pytest.raises(ConfigError, match=r"'a' is in both .*one\.yaml and .*two\.yaml"):
        read_documents([str(tmp_path)])
    (tmp_path / "two.yaml").write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"two\.yaml is not valid YAML"):
        read_documents([str(tmp_path)])
    (tmp_path / "two.yaml").write_text("kind: CiliumClusterwideNetworkPolicy\nmetadata: [x]\n")
    with pytest.raises(ConfigError, match="metadata is not a mapping"):
        read_documents([str(tmp_path)])


def test_a_document_takes_the_generation_its_routerpolicy_observed() -> None:
    policies = [{"metadata": {"name": "a"}}, {"metadata": {"name": "b", "generation": 7}}]
    seen = {"a": {"status": {"observedGeneration": 3}}, "b": {"status": {"observedGeneration": 5}}}
    known = with_known_generations(policies, seen)
    assert [p["metadata"].get("generation") for p in known] == [3, 7]
    assert with_known_generations(policies[:1], {})[0]["metadata"] == {"name": "a"}
