"""Lists of plain objects completed in one pass, with graphql-core's answer and errors.

graphql-core completes a list of objects value by value: for every item and every field
it builds a resolve info, calls the field's resolver, checks for awaitables, coerces the
leaf and records the path. A 14-day availability answer has about 1,400 such leaves and
spends about 40% of its time there; 100 people over 30 days, about 28,000 ids.

For a list whose items are objects made only of *basic* fields (strawberry fields without a
resolver, permission or extension: the value is the attribute) this module compiles the
selection once per execution into a function that builds each item's dict directly, in
the selection's order, coercing leaves with the types' own ``coerce_output_value``. Nested
plain objects and lists of leaves are compiled the same way. Anything else (a resolver,
an interface or union, ``@defer``/``@stream``, middleware) is left to graphql-core. When
a value is not what the schema promises (a null for a non-null field, a leaf that does not
coerce, an awaitable), the whole list is completed again by graphql-core, so the answer,
its errors and their paths are exactly graphql-core's; basic fields only read attributes,
so reading them twice changes nothing.

A resolver may also return ``Columns``: the items, built only if graphql-core or a plan
needs them, together with the selected leaves (or lists of leaves) already written as
graphql-core would write them, one column per field. A selection of those fields only
becomes rows by zipping the columns (300 busy blocks: no object, resolver or coercion
per leaf).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    GraphQLString,
    Undefined,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from server.lazy_sequence import BuiltOnFirstUse

Completer = Callable[[Any], Any]
_UNSUPPORTED = object()
T = TypeVar("T")


class Columns(BuiltOnFirstUse[T]):
    """A list result given twice: as items (``build``, called at most once) and as
    ``columns``, GraphQL field name to every item's value of that field exactly as the
    field's type coerces it (an ``ID`` as its ``str``, a ``DateTime`` in ISO 8601, an
    enum by its GraphQL name, a list of leaves as the list of theirs), never null. The
    caller guarantees the two agree; the tests compare both routes. Rows may share a
    list value: answers are only written out, never changed."""

    __slots__ = ("columns",)

    def __init__(
        self, length: int, columns: Mapping[str, Sequence[Any]], build: Callable[[], list[T]]
    ) -> None:
        if any(len(values) != length for values in columns.values()):
            raise ValueError("every column must have one value per item")
        super().__init__(length, build)
        self.columns = columns


class _Fallback(Exception):
    """A value the compiled plan does not handle: graphql-core completes the list again
    (any other exception raised while completing is treated the same way)."""


def _is_basic(field_def: GraphQLField) -> bool:
    return bool(getattr(field_def.resolve, "_is_default", False))


def _leaf(leaf_type: GraphQLScalarType | GraphQLEnumType, non_null: bool) -> Completer:
    coerce = leaf_type.coerce_output_value

    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Fallback
            return None
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise _Fallback
        return coerced

    return complete


def _alive(method: weakref.WeakMethod[Callable[..., Any]]) -> Callable[..., Any]:
    found = method()
    if found is None:
        raise RuntimeError("the GraphQL execution this resolver belonged to has ended")
    return found


class FastListsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with lists of plain objects completed in one pass."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[int, int], tuple[FieldDetailsList, Any]] = {}
        # graphql-core's resolver helpers hold two of this context's bound methods: a
        # reference cycle, so the whole request (the context value with its session and
        # loaders, the variables) outlived the answer until the garbage collector's next
        # pass, and under load most requests' objects were promoted to the older
        # generations before it came. The same helpers through weak references: freed
        # when the request ends, by reference counting.
        gather = weakref.WeakMethod(self.gather_async_work)
        track = weakref.WeakMethod(self.track_async_work)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: _alive(gather)(values),
            track=lambda values: _alive(track)(values),
        )

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if isinstance(result, Columns):
            rows = self._rows_from_columns(return_type.of_type, field_details_list, path, result)
            if rows is not None:
                return rows
            result = result.items()
        plan = self._item_plan(return_type.of_type, field_details_list, path)
        if plan is not _UNSUPPORTED and isinstance(result, list | tuple):
            completed = _completed(plan, result)
            if completed is not None:
                return completed
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _rows_from_columns(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Columns[Any],
    ) -> list[dict[str, Any]] | None:
        """The rows when every selected field is a basic leaf given as a column (or
        ``__typename``); ``None`` sends the items down the usual routes."""
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:
            return None
        if self.get_stream_usage(field_details_list, path) is not None:
            return None
        named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(named, GraphQLObjectType) or named.is_type_of is not None:
            return None
        grouped, new_defer_usages, forbidden = self.collect_subfields(named, field_details_list)
        if new_defer_usages or forbidden:
            return None
        keys: list[str] = []
        columns: list[Sequence[Any]] = []
        for response_key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                column: Sequence[Any] = [named.name] * len(result)
            else:
                field_def = named.fields.get(name)
                if (
                    field_def is None
                    or not _is_basic(field_def)
                    or not _leaf_or_leaves(field_def.type)
                    or name not in result.columns
                ):
                    return None
                column = result.columns[name]
            keys.append(response_key)
            columns.append(column)
        # Filled column by column (keys in the same order): about half the time of
        # dict(zip(keys, row)) per row.
        rows: list[dict[str, Any]] = [{} for _ in range(len(result))]
        for key, column in zip(keys, columns, strict=True):
            for row, value in zip(rows, column, strict=True):
                row[key] = value
        return rows

    def _item_plan(
        self, item_type: GraphQLOutputType, field_details_list: FieldDetailsList, path: Path
    ) -> Any:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:
            return _UNSUPPORTED  # e.g. a schema extension's resolve() hook
        key = (id(item_type), id(field_details_list))
        cached = self._plans.get(key)
        if cached is not None:
            return cached[1]
        plan: Any = _UNSUPPORTED
        if self.get_stream_usage(field_details_list, path) is None:
            plan = self._completer(item_type, field_details_list, depth=0)
            plan = _UNSUPPORTED if plan is None else plan
        # Keep the list alive with the plan, so its id is not reused during execution.
        self._plans[key] = (field_details_list, plan)
        return plan

    def _completer(
        self, of_type: GraphQLOutputType, field_details_list: FieldDetailsList, depth: int
    ) -> Completer | None:
        """How to complete one value of ``of_type``, or ``None`` when graphql-core must."""
        non_null = isinstance(of_type, GraphQLNonNull)
        named = of_type.of_type if isinstance(of_type, GraphQLNonNull) else of_type
        inner: Completer | None
        if isinstance(named, GraphQLScalarType | GraphQLEnumType):
            return _leaf(named, non_null)
        if isinstance(named, GraphQLList):
            inner = self._completer(named.of_type, field_details_list, depth + 1)
            if inner is None:
                return None
            item = named.of_type
            item_named = item.of_type if isinstance(item, GraphQLNonNull) else item
            text_items = item_named in (GraphQLID, GraphQLString)
            return _list(inner, non_null, text_items=text_items)
        if isinstance(named, GraphQLObjectType) and depth < 4:
            inner = self._object(named, field_details_list, depth + 1)
            return None if inner is None else _nullable(inner, non_null)
        return None

    def _object(
        self, object_type: GraphQLObjectType, field_details_list: FieldDetailsList, depth: int
    ) -> Completer | None:
        if object_type.is_type_of is not None:
            return None
        grouped, new_defer_usages, forbidden = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages or forbidden:
            return None
        fields: list[tuple[str, Callable[..., Any] | None, Completer]] = []
        for response_key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                fields.append((response_key, None, _constant(object_type.name)))
                continue
            field_def = object_type.fields.get(name)
            if field_def is None or not _is_basic(field_def):
                return None
            completer = self._completer(field_def.type, details, depth)
            if completer is None:
                return None
            fields.append((response_key, field_def.resolve, completer))
        return _record(fields, self.is_awaitable)


def _leaf_or_leaves(field_type: GraphQLOutputType) -> bool:
    """A leaf type or a list of one (either maybe non-null): what a column may hold."""
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    if isinstance(field_type, GraphQLList):
        field_type = field_type.of_type
        if isinstance(field_type, GraphQLNonNull):
            field_type = field_type.of_type
    return isinstance(field_type, GraphQLScalarType | GraphQLEnumType)


def _completed(plan: Completer, items: list[Any] | tuple[Any, ...]) -> list[Any] | None:
    """The completed list, or ``None`` when graphql-core must complete it (and report)."""
    try:
        return [plan(item) for item in items]
    except Exception:  # graphql-core completes the list again and reports the error
        return None


def _constant(value: str) -> Completer:
    return lambda _source: value


def _nullable(inner: Completer, non_null: bool) -> Completer:
    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Fallback
            return None
        return inner(value)

    return complete


def _list(inner: Completer, non_null: bool, *, text_items: bool = False) -> Completer:
    """``text_items``: the items are IDs or Strings, which coerce a ``str`` to itself, so
    a list of nothing but ``str`` is its own completion (an id list of 100 people)."""

    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Fallback
            return None
        if not isinstance(value, list | tuple):
            raise _Fallback
        if text_items and all(type(item) is str for item in value):
            return list(value)
        return [inner(item) for item in value]

    return complete


def _record(
    fields: Iterable[tuple[str, Callable[..., Any] | None, Completer]],
    is_awaitable: Callable[[Any], bool],
) -> Completer:
    plan = list(fields)

    def complete(source: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for response_key, resolve, completer in plan:
            if resolve is None:
                answer[response_key] = completer(source)
                continue
            value = resolve(source, None)
            if is_awaitable(value):
                raise _Fallback
            answer[response_key] = completer(value)
        return answer

    return complete
