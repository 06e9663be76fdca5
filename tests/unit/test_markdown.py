"""`--output markdown` pieces the goldens cannot pin for every input: text from the cluster can
never close a code block, break a table row or inject HTML."""

from __future__ import annotations

from sync_job.markdown import _cell, _fenced


def test_a_fence_is_longer_than_any_backtick_run_inside() -> None:
    block = _fenced(["plain", "a ```` run of four", "```"])
    assert block[0] == "`````text" and block[-1] == "`````"
    assert _fenced(["no ticks"])[0] == "```text"


def test_a_cell_is_one_line_without_pipes_html_or_code_spans() -> None:
    cell = _cell("a | b\n<details></details> `x` &")
    assert cell == "a \\| b &lt;details&gt;&lt;/details&gt; 'x' &amp;"
