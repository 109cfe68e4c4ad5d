"""A flat input built by ``flat_input`` equals what Strawberry's own conversion builds,
for every shape of value graphql-core hands over."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import convert_argument
from strawberry.types.base import get_object_definition

from server.schema.availability import AvailabilityInput
from server.schema.flat_inputs import flat_input
from server.schema.schema import schema

SCALARS = schema.schema_converter.scalar_registry

START = datetime(2027, 3, 8, 9, tzinfo=UTC)
END = datetime(2027, 3, 22, 9, tzinfo=UTC)

VALUES: list[dict[str, Any]] = [
    # everything given
    {
        "participantIds": ["a", "b"],
        "start": START,
        "end": END,
        "durationMinutes": 30,
        "stepMinutes": 15,
        "optionalParticipantIds": ["c"],
        "minimumFree": 1,
        "programId": "p",
    },
    # graphql-core fills in published defaults; the list default is not published
    {
        "participantIds": ["a"],
        "start": START,
        "end": END,
        "durationMinutes": 45,
        "stepMinutes": 30,
        "minimumFree": 0,
    },
    # an explicit null and empty lists
    {
        "participantIds": [],
        "start": START,
        "end": END,
        "durationMinutes": 60,
        "stepMinutes": 30,
        "minimumFree": 0,
        "optionalParticipantIds": [],
        "programId": None,
    },
]


def _strawberry_builds(value: dict[str, Any], config: StrawberryConfig) -> Any:
    definition = get_object_definition(AvailabilityInput, strict=True)
    hook, definition.from_input = definition.from_input, None
    try:
        return convert_argument(value, AvailabilityInput, SCALARS, config)
    finally:
        definition.from_input = hook


@pytest.mark.parametrize("value", VALUES)
def test_the_flat_input_is_what_strawberry_would_build(value: dict[str, Any]) -> None:
    assert get_object_definition(AvailabilityInput, strict=True).from_input is not None
    config = StrawberryConfig()
    ours = convert_argument(value, AvailabilityInput, SCALARS, config)
    theirs = _strawberry_builds(value, config)
    assert isinstance(ours, AvailabilityInput)
    assert ours == theirs


def test_lists_are_copied_not_shared() -> None:
    value = dict(VALUES[0])
    built = convert_argument(value, AvailabilityInput, SCALARS, StrawberryConfig())
    built.participant_ids.append("x")
    assert value["participantIds"] == ["a", "b"]


def test_the_schema_name_converter_decides_the_names() -> None:
    """A schema without camel case names its fields in snake case."""
    snake = {
        "participant_ids": ["a"],
        "start": START,
        "end": END,
        "duration_minutes": 20,
        "step_minutes": 10,
        "minimum_free": 0,
    }
    config = StrawberryConfig(auto_camel_case=False)
    built = convert_argument(snake, AvailabilityInput, SCALARS, config)
    assert built == _strawberry_builds(snake, config)
    assert built.duration_minutes == 20 and built.step_minutes == 10


def test_a_field_that_is_not_flat_is_refused_at_import() -> None:
    @strawberry.enum
    class Colour(Enum):
        RED = "red"

    @strawberry.input
    class Palette:
        name: str
        colour: Colour

    with pytest.raises(TypeError, match=r"Palette\.colour is not a flat field"):
        flat_input(Palette)
