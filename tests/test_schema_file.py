"""``schema.graphql`` at the repository root is what integrators build on: it must match
the schema the server serves, and no type may expose a secret."""

from __future__ import annotations

import re
from pathlib import Path

from server.schema.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_is_current() -> None:
    printed = schema.as_str() + "\n"
    assert SCHEMA_FILE.read_text() == printed, "schema.graphql is out of date: run `make schema`"


def test_no_field_can_carry_a_secret() -> None:
    sdl = schema.as_str()
    fields = re.findall(r"^\s+(\w+)[(:]", sdl, flags=re.MULTILINE)
    forbidden = re.compile(r"token|secret|password|verifier|clientstate|ciphertext", re.IGNORECASE)
    # Inputs may *take* an app password (connectCaldavCalendar); no output type may return one.
    outputs = re.findall(r"^type (\w+) \{(.*?)^\}", sdl, flags=re.MULTILINE | re.DOTALL)
    leaked = [
        f"{name}.{field}"
        for name, body in outputs
        for field in re.findall(r"^\s+(\w+)[(:]", body, flags=re.MULTILINE)
        if forbidden.search(field)
    ]
    assert fields, "the SDL was not parsed"
    assert leaked == []
