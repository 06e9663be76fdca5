"""An incremental reader of RouterOS's print replies: a JSON array of flat objects, object by
object, as the bytes arrive. Pure; no I/O.

A router's tables can hold 150,000 foreign address-list entries; the job keeps only the rows it
owns, so the whole reply (and the whole parsed list) must never be in memory at once. Each
object is parsed by the standard library's decoder (`json.JSONDecoder.raw_decode`, lenient on
raw control characters as `client._json` is: RouterOS may send them) once its closing brace has
arrived; between objects only `[`, `,`, `]` and whitespace are accepted. Bytes are decoded as
UTF-8 incrementally, so a character split across two chunks is kept whole (invalid bytes become
U+FFFD, as `client._json` does). Anything else (not an array, an item that is not an object, a
value that is not a string, truncated or trailing data, one object larger than `MAX_OBJECT`) is
`NotRows`.

Speed: the objects that have fully arrived are parsed together, at most `WINDOW` characters at
a time, as one `[...]` text cut after its last `}`; should that `}` be inside a string, the cut
text is not valid JSON (the string is left open) and the objects are parsed one by one instead.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator

# No RouterOS row comes near this (the longest fields are 255-character comments); a reply that
# does is not rows, and it is not buffered whole.
MAX_OBJECT = 1 << 20

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(strict=False)
WINDOW = 1 << 18


class NotRows(ValueError):
    """The reply is not a JSON array of objects."""


def iter_rows(chunks: Iterable[bytes]) -> Iterator[dict[str, str]]:
    """Each object of the JSON array in `chunks`, with every value as a string."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer, state = "", "start"  # start -> first -> (item -> next)* -> end
    for chunk, final in _with_last(chunks):
        buffer += text.decode(chunk, final=final)
        position = 0
        while True:
            position = _SPACE.match(buffer, position).end()  # type: ignore[union-attr]
            if position == len(buffer):
                break
            char = buffer[position]
            if state == "start":
                if char != "[":
                    raise NotRows("the reply is not a JSON array")
                state, position = "first", position + 1
            elif state == "next" or (state == "first" and char == "]"):
                if char not in ",]":
                    raise NotRows("the reply's array items are not separated by commas")
                state, position = ("item" if char == "," else "end"), position + 1
            elif state == "end":
                raise NotRows("the reply has data after its array")
            else:  # "first" or "item": an object must follow
                if char != "{":
                    raise NotRows("an item of the reply is not a JSON object")
                cut = buffer.rfind("}", position, position + WINDOW)
                if cut > position:
                    try:
                        batch = _DECODER.decode(f"[{buffer[position : cut + 1]}]")
                    except json.JSONDecodeError:
                        pass  # cut inside a string, or not JSON: one object at a time
                    else:
                        for row in batch:
                            yield _strings(row)
                        state, position = "next", cut + 1
                        continue
                try:
                    row, position = _DECODER.raw_decode(buffer, position)
                except json.JSONDecodeError:
                    if final or len(buffer) - position > MAX_OBJECT:
                        raise NotRows("the reply is not JSON") from None
                    break  # the object is not complete yet
                yield _strings(row)
                state = "next"
        buffer = buffer[position:]
    if state != "end":
        raise NotRows("the reply ends before its array does")


def _with_last(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk, and whether it is the last; an empty final chunk ends the stream."""
    for chunk in chunks:
        yield chunk, False
    yield b"", True


def _strings(row: object) -> dict[str, str]:
    if type(row) is not dict:
        raise NotRows("an item of the reply is not a JSON object")
    for value in row.values():
        if type(value) is not str:
            if isinstance(value, dict | list):
                raise NotRows("a value in the reply is not a string")
            return {str(k): _text(v) for k, v in row.items()}
    return row


def _text(value: object) -> str:
    """RouterOS sends strings; a number or boolean some proxy made of one is read back as text
    the way the rest of the client has always read it (`str`)."""
    return value if isinstance(value, str) else str(value)
