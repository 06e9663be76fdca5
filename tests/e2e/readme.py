"""The README's tested blocks, and a checkout of the files a user has when running them.

A block is tested when the line before its opening fence is ``<!-- tested: NAME -->``; the
install tests run each by name, verbatim, in a throwaway copy of the repository's tracked files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
_TESTED = re.compile(
    r"^([ \t]*)<!-- tested: ([\w-]+) -->\n[ \t]*```sh\n(.*?)\n[ \t]*```$", re.M | re.S
)


def marked_blocks(text: str | None = None) -> dict[str, str]:
    """Each tested block's shell text by name, de-indented as a user would paste it."""
    blocks: dict[str, str] = {}
    for match in _TESTED.finditer(README.read_text() if text is None else text):
        name, body = match.group(2), textwrap.dedent(match.group(3))
        assert name not in blocks, f"README marks two blocks `tested: {name}`"
        blocks[name] = body
    return blocks


def checkout(into: Path, *folders: str) -> Path:
    """Copy the git-tracked files under ``folders`` (nothing untracked) to ``into``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *folders],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).exists():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, into / name)
    return into
