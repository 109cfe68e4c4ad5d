"""Lists completed in one pass answer exactly as graphql-core does, errors included."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from server.schema import fast_lists
from server.schema.fast_lists import Columns, FastListsExecutionContext


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Tag:
    label: str
    weight: int | None


@strawberry.type
class Item:
    id: strawberry.ID
    at: datetime
    colour: Colour
    note: str | None
    tag_ids: list[strawberry.ID]
    tag: Tag | None
    tags: list[Tag]

    @strawberry.field
    def shout(self) -> str:
        return self.note.upper() if self.note else "-"


def _item(n: int, **changes: Any) -> Item:
    values: dict[str, Any] = {
        "id": strawberry.ID(f"i{n}"),
        "at": datetime(2027, 3, 28, 1, n % 60, tzinfo=UTC),
        "colour": Colour.RED if n % 2 else Colour.BLUE,
        "note": None if n % 3 else f"note {n}",
        "tag_ids": [strawberry.ID(f"t{n}"), strawberry.ID(f"t{n + 1}")],
        "tag": Tag(label=f"tag {n}", weight=None) if n % 2 else None,
        "tags": [Tag(label="a", weight=n), Tag(label="b", weight=None)],
    }
    values.update(changes)
    return Item(**values)


ITEMS: list[Item] = [_item(n) for n in range(12)]
BUILDS: list[int] = []  # 1: a Columns was returned, 2: its items were built


@strawberry.type
class Query:
    @strawberry.field
    def items(self, broken: str = "") -> list[Item]:
        if broken == "null_id":
            return [*ITEMS[:3], _item(3, id=None), *ITEMS[4:]]
        if broken == "bad_enum":
            return [*ITEMS[:2], _item(2, colour="green")]
        if broken == "bad_date":
            return [_item(0, at="yesterday")]
        if broken == "null_list":
            return [_item(0, tag_ids=None)]
        if broken == "null_in_list":
            return [_item(0, tag_ids=["t0", None])]
        return ITEMS

    @strawberry.field
    def maybe_items(self) -> list[Item | None]:
        return [ITEMS[0], None, ITEMS[1]]

    @strawberry.field
    def columned(self) -> list[Item]:
        """ITEMS as columns for id, at and colour (graphql-core reads the items)."""
        BUILDS.append(1)
        columns = {
            "id": [str(i.id) for i in ITEMS],
            "at": [i.at.isoformat() for i in ITEMS],
            "colour": [i.colour.name for i in ITEMS],
            "tagIds": [[str(t) for t in i.tag_ids] for i in ITEMS],
        }
        return Columns(len(ITEMS), columns, lambda: (BUILDS.append(2), list(ITEMS))[1])  # type: ignore[return-value]

    @strawberry.field
    async def later(self) -> list[Tag]:
        return [Tag(label="x", weight=1)]


SCHEMAS = {
    name: strawberry.Schema(query=Query, execution_context_class=context)
    for name, context in (
        ("fast", FastListsExecutionContext),
        ("core", StrawberryGraphQLCoreExecutionContext),
    )
}

QUERIES = [
    "{ items { id at colour note tagIds } }",
    "{ items { __typename renamed: id id colour tag { label weight } tags { label weight } } }",
    "{ items { ...F } } fragment F on Item { id note ... on Item { tagIds } }",
    "query($on: Boolean!) { items { id note @include(if: $on) colour @skip(if: $on) } }",
    "{ items { id shout } }",  # a field with a resolver: graphql-core's own path
    "{ maybeItems { id tag { label } } }",
    "{ later { label weight } }",
    '{ items(broken: "null_id") { id note } }',
    '{ items(broken: "bad_enum") { id colour } }',
    '{ items(broken: "bad_date") { at } }',
    '{ items(broken: "null_list") { tagIds } }',
    '{ items(broken: "null_in_list") { tagIds } }',
    "{ columned { id at colour } }",
    "{ columned { __typename c: colour id } }",
    "{ columned { id tagIds colour } }",
    "{ columned { id note tagIds } }",  # not every field is a column: the items
    "{ columned { id shout } }",
]


def _run(name: str, query: str) -> tuple[Any, list[dict[str, Any]]]:
    result = asyncio.run(SCHEMAS[name].execute(query, variable_values={"on": True}))
    errors = [
        {"message": e.message, "path": e.path, "locations": e.locations}
        for e in result.errors or []
    ]
    return result.data, errors


@pytest.mark.parametrize("query", QUERIES)
def test_same_answer_and_errors_as_graphql_core(query: str) -> None:
    assert _run("fast", query) == _run("core", query)


def test_plain_lists_take_the_one_pass_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above would pass if nothing were ever compiled; count the lists."""
    done: list[int] = []
    completed = fast_lists._completed

    def counting(plan: Any, items: Any) -> Any:
        answer = completed(plan, items)
        done.append(-1 if answer is None else len(answer))
        return answer

    monkeypatch.setattr(fast_lists, "_completed", counting)
    data, errors = _run("fast", "{ items { id tagIds tags { label } } }")
    assert not errors and data is not None and len(data["items"]) == 12
    assert done == [12]  # one pass for the items, nested lists included

    done.clear()
    _run("fast", '{ items(broken: "null_id") { id } }')
    assert done == [-1]  # refused by the plan, completed again by graphql-core

    done.clear()
    _run("fast", "{ items { id shout } }")
    assert done == []  # a resolver among the fields: never compiled


@pytest.mark.parametrize(
    ("query", "builds"),
    [
        ("{ columned { id at colour } }", [1]),
        ("{ columned { __typename colour } }", [1]),
        ("{ columned { tagIds at } }", [1]),
        ("{ columned { id note } }", [1, 2]),
        ("{ columned { shout } }", [1, 2]),
    ],
)
def test_columns_are_zipped_without_building_items(query: str, builds: list[int]) -> None:
    BUILDS.clear()
    data, errors = _run("fast", query)
    assert not errors and data is not None and len(data["columned"]) == 12
    assert builds == BUILDS


def test_columns_must_match_their_length() -> None:
    with pytest.raises(ValueError, match="one value per item"):
        Columns(2, {"id": ["a"]}, list)
    short = Columns(2, {"id": ["a", "b"]}, lambda: [1])
    with pytest.raises(ValueError, match="were counted"):
        short.items()
