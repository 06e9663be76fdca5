"""`kube.iter_items` decodes a list reply's items one at a time; it must agree with json.loads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_job.kubeapi import _NotAList, iter_items

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, derandomize=True, database=None)
@given(
    items=st.lists(values, max_size=6),
    before=st.dictionaries(st.sampled_from(["kind", "apiVersion", "metadata"]), values, max_size=3),
    after=st.dictionaries(st.sampled_from(["x", "y"]), values, max_size=2),
    indent=st.sampled_from([None, 0, 2]),
)
def test_agrees_with_json_loads(
    items: list[Any], before: dict[str, Any], after: dict[str, Any], indent: int | None
) -> None:
    text = json.dumps({**before, "items": items, **after}, indent=indent)
    assert list(iter_items(text)) == json.loads(text)["items"]


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '"items"',
        '{"items": 3}',
        '{"kind": "List"}',
        '{"items": []} trailing',
        '{"items": [1,}',
    ],
)
def test_replies_that_are_not_a_list_of_items_are_refused(text: str) -> None:
    with pytest.raises((_NotAList, ValueError)):
        list(iter_items(text))


def test_null_items_are_empty_only_when_asked() -> None:
    assert list(iter_items('{"items": null}', null_is_empty=True)) == []
    with pytest.raises(_NotAList):
        list(iter_items('{"items": null}'))
