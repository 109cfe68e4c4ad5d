"""JSON from strangers, with its nesting bounded before the decoder recurses into it.

``json.loads`` recurses once per ``[`` or ``{``: a 1 MB body of brackets raises
``RecursionError`` (a 500) or builds a structure every later consumer must recurse through.
The depth is measured first in linear time with C-speed string operations: strings are
blanked out, everything but brackets is dropped, and innermost ``[]`` pairs are removed one
level per pass, at most ``max_depth`` passes.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_DEPTH = 32

# A JSON string, or an unterminated one running to the end (so no start is rescanned).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


class JSONRefused(ValueError):
    """The body is not acceptable JSON; the message is safe to show."""


def nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text nests arrays/objects deeper than ``max_depth`` (or is
    unbalanced, which the decoder would refuse anyway)."""
    brackets = _STRING.sub(b"", body).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return True  # unbalanced
        brackets = shorter
    return bool(brackets)


def loads_bounded(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    raw = body.encode() if isinstance(body, str) else body
    if nesting_exceeds(raw, max_depth):
        raise JSONRefused(f"The JSON body nests more than {max_depth} levels deep.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise JSONRefused("The body is not valid JSON.") from exc
