"""The incremental reader of RouterOS print replies (`sync_job.router.jsonstream`): the same rows
as parsing the whole reply, however the bytes are cut, escapes and all; everything that is not
a JSON array of flat objects is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_job.router import jsonstream
from sync_job.router.jsonstream import NotRows, iter_rows

TRICKY = [
    {".id": "*1", "comment": 'quote " backslash \\ slash / brace } {', "list": "a"},
    {".id": "*2", "comment": '},{"x":"y"}]', "address": "1.2.3.4"},
    {".id": "*3", "comment": "é ü 日本 \U0001f600 \u2028", "disabled": "false"},
    {".id": "*4", "comment": "tab\tnewline\ncr\r nul\x00", "dynamic": "true"},
    {".id": "*5"},
    {},
]


def whole(body: bytes) -> list[dict[str, str]]:
    return list(iter_rows([body]))


def test_escapes_and_braces_in_strings_read_as_json_loads_reads_them() -> None:
    body = json.dumps(TRICKY).encode()
    assert whole(body) == TRICKY
    # RouterOS's own spelling: raw UTF-8, raw control characters, escaped solidus, \u escapes
    raw = b'[{".id":"*1","comment":"a\tb\\/c\\u00e9\\ud83d\\ude00"}]'
    assert whole(raw) == [{".id": "*1", "comment": "a\tb/cé\U0001f600"}]


@pytest.mark.parametrize("indent", [None, 2])
def test_every_cut_into_two_chunks_and_one_byte_chunks_give_the_same_rows(
    indent: int | None,
) -> None:
    body = json.dumps(TRICKY, indent=indent, ensure_ascii=False).encode()
    for cut in range(len(body) + 1):
        assert list(iter_rows([body[:cut], body[cut:]])) == TRICKY, cut
    assert list(iter_rows(body[i : i + 1] for i in range(len(body)))) == TRICKY


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4), max_size=8),
    st.lists(st.integers(1, 40), min_size=1, max_size=10),
    st.booleans(),
)
def test_random_rows_in_random_chunks(
    rows: list[dict[str, str]], sizes: list[int], ascii_only: bool
) -> None:
    body = json.dumps(rows, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    chunks, index = [], 0
    while index < len(body):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(body[index : index + size])
        index += size
    expected = json.loads(body.decode("utf-8", errors="replace"), strict=False)
    assert list(iter_rows(chunks)) == expected


def test_invalid_utf8_becomes_the_replacement_character_as_in_the_whole_reply() -> None:
    body = b'[{".id":"*1","comment":"a\xffb\xe6\x97"}]'
    assert whole(body) == [{".id": "*1", "comment": "a\ufffdb\ufffd"}]


def test_numbers_and_booleans_read_as_text() -> None:
    assert whole(b'[{".id":"*1","n":5,"b":true,"z":null}]') == [
        {".id": "*1", "n": "5", "b": "True", "z": "None"}
    ]


@pytest.mark.parametrize("body", [b"[]", b" [ ] \n", b"\n[\n]\n"])
def test_empty_arrays(body: bytes) -> None:
    assert whole(body) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "ends before its array"),
        (b'{".id":"*1"}', "not a JSON array"),
        (b"[1]", "not a JSON object"),
        (b'["*1"]', "not a JSON object"),
        (b'[{".id":"*1"},2]', "not a JSON object"),
        (b'[{".id":"*1","x":{"y":"z"}}]', "not a string"),
        (b'[{".id":"*1","x":["y"]}]', "not a string"),
        (b'[{".id":"*1"}', "ends before its array"),
        (b'[{".id":"*1"', "not JSON"),
        (b'[{".id":"*1"},]', "not a JSON object"),
        (b'[{".id":"*1"}{".id":"*2"}]', "separated by commas"),
        (b"[,]", "not a JSON object"),
        (b'[{".id":"*1"}]x', "data after its array"),
        (b"[][]", "data after its array"),
        (b'[{".id":"*1",}]', "not JSON"),
        (b"[{'id':'*1'}]", "not JSON"),
    ],
)
def test_what_is_not_a_json_array_of_flat_objects_is_refused(body: bytes, why: str) -> None:
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))]):
        with pytest.raises(NotRows, match=why):
            list(iter_rows(chunks))


def test_an_object_too_large_for_a_row_is_refused_without_waiting_for_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jsonstream, "MAX_OBJECT", 100)
    endless = (b'[{".id":"*1","comment":"' if i == 0 else b"x" * 50 for i in range(1000))
    with pytest.raises(NotRows, match="not JSON"):
        list(iter_rows(endless))


def test_rows_come_out_as_their_bytes_arrive() -> None:
    """Streamed: the first rows are read before the rest of the reply exists."""
    seen: list[str] = []

    def chunks():  # type: ignore[no-untyped-def]
        yield b'[{".id":"*1"},'
        assert seen == ["*1"]
        yield b'{".id":"*2"}]'

    for row in iter_rows(chunks()):
        seen.append(row[".id"])
    assert seen == ["*1", "*2"]
