"""GraphQL answers are written by orjson, with json.dumps for what orjson refuses."""

from __future__ import annotations

import json
from typing import Any

from server.web.graphql_view import TandemGraphQL


def _encode(data: Any) -> str:
    encoded = TandemGraphQL.encode_json(object.__new__(TandemGraphQL), data)
    return encoded.decode() if isinstance(encoded, bytes) else encoded


def test_same_json_as_before_but_utf8() -> None:
    answer = {"data": {"user": {"name": "Zoë Ødegård", "ids": ["a", "b"], "n": 3, "x": None}}}
    encoded = _encode(answer)
    assert json.loads(encoded) == answer
    assert "Zoë" in encoded  # UTF-8, not a \\u escape
    assert encoded == json.dumps(answer, separators=(",", ":"), ensure_ascii=False)


def test_what_orjson_refuses_still_answers() -> None:
    answer = {"data": {"settings": {"big": 2**70}}}
    assert json.loads(_encode(answer)) == answer
