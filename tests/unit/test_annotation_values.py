"""The annotation means yes: `false`, `no` and `0` (any case) do not select a policy, and say so
at warning level naming it; an empty value and any other value select it, as before."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sync_job.source.file import load_snapshot
from sync_job.source.snapshot import ANNOTATION, is_annotated


def policy(value: object, name: str = "web") -> dict[str, object]:
    return {"metadata": {"name": name, "annotations": {ANNOTATION: value}}}


@pytest.mark.parametrize("value", ["false", "False", "FALSE", "no", "No", "0", " false "])
def test_a_no_value_does_not_select_and_is_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert not is_annotated(policy(value, name="shop-front"))
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "shop-front" in record.getMessage() and ANNOTATION in record.getMessage()


@pytest.mark.parametrize("value", ["", "true", "yes", "1", "anything", "off", None])
def test_empty_and_any_other_value_select(value: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert is_annotated(policy(value))
    assert not caplog.records


def test_no_annotation_does_not_select() -> None:
    assert not is_annotated({"metadata": {"name": "web", "annotations": {"other": "true"}}})
    assert not is_annotated({"metadata": {"name": "web"}})


def test_a_file_policy_annotated_false_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "\n---\n".join(
            f"apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\n"
            f"metadata:\n  name: {name}\n  annotations:\n    {ANNOTATION}: {value!r}\n"
            "spec: {}\n"
            for name, value in (("kept", "true"), ("dropped", "No"), ("empty", ""))
        )
    )
    names = [p["metadata"]["name"] for p in load_snapshot(path).policies]
    assert names == ["kept", "empty"]
