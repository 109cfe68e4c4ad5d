"""Flat GraphQL inputs built straight from the values graphql-core has coerced.

Strawberry converts an argument by walking its type for every field on every request,
resolving each field's annotation again: about 6% of an availability question. An input
whose fields are all built-in scalars or lists of them needs none of that, because
graphql-core has already coerced every value (a ``DateTime`` is a ``datetime``, an
``ID`` a ``str``) and Strawberry would hand each one over unchanged. ``flat_input``
gives such a type Strawberry's ``from_input`` hook (for types that build their own
value) copying the values by name, lists copied as Strawberry copies them (graphql-core
shares a default list between requests). A field of any other kind (an enum, a nested
input, a custom scalar) refuses at import time.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import strawberry
from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryList, StrawberryOptional, get_object_definition

__all__ = ["flat_input"]

T = TypeVar("T", bound=type)

_LEAVES = frozenset(
    {
        str,
        int,
        float,
        bool,
        strawberry.ID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        decimal.Decimal,
        uuid.UUID,
    }
)

_Plan = list[tuple[str, str, bool]]  # GraphQL name, Python name, is a list


def flat_input(cls: T) -> T:
    """Decorate a ``@strawberry.input`` class (after it) whose fields are flat."""
    definition = get_object_definition(cls, strict=True)
    shapes: list[tuple[Any, bool]] = []
    for field in definition.fields:
        kind: Any = field.resolve_type(type_definition=definition)
        if isinstance(kind, StrawberryOptional):
            kind = kind.of_type
        is_list = isinstance(kind, StrawberryList)
        leaf: Any = kind.of_type if is_list else kind
        if isinstance(leaf, StrawberryOptional):
            leaf = leaf.of_type
        if leaf not in _LEAVES:
            raise TypeError(f"{cls.__name__}.{field.python_name} is not a flat field")
        shapes.append((field, is_list))
    # Required fields the value lacks get None, as Strawberry gives them (graphql-core
    # has already refused a missing non-null one).
    implicit: dict[str, Any] = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    }
    plans: dict[int, _Plan] = {}

    def plan(context: InputContext) -> _Plan:
        """Field names as this schema's name converter writes them, worked out once."""
        found = plans.get(id(context.config))
        if found is None:
            converter = context.config.name_converter
            found = [
                (converter.from_field(field), field.python_name, is_list)
                for field, is_list in shapes
            ]
            plans[id(context.config)] = found
        return found

    def from_input(target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        kwargs = dict(implicit)
        for graphql_name, python_name, is_list in plan(context):
            if graphql_name in value:
                given = value[graphql_name]
                kwargs[python_name] = list(given) if is_list and given is not None else given
        return target(**kwargs)

    hook: Callable[[type, Mapping[str, Any], InputContext], Any] = from_input
    definition.from_input = hook
    return cls
