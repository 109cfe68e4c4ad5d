"""Bounds what a GraphQL document may cost before graphql-core spends anything on it.

graphql-core's validation walks every fragment spread where it is used, and its
overlapping-fields rule compares every pair of fields answering under one name, so a small
document can cost minutes: fragments that each spread the previous one twice expand to 2^n
fields, and one selection repeated 300 times is 45,000 comparisons per level. This module
parses each document once (with a token cap), then measures it in time linear in its text:
fragment sizes are memoised per fragment, cycles are found before anything expands, and
only a document whose expanded size is under the cap is walked in full. A document over any
limit is refused with a ``GraphQLError`` whose ``extensions.code`` names the limit.

Parsed documents, their measurements and their successful validations are cached by the
document text (LRU, bounded), so an ordinary request skips parsing and validation. The cache
holds no request state: permissions run at execution, and the one rule that depends on the
caller (no introspection when anonymous) is part of the validation cache key.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    parse,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

MAX_TOKENS = 2000
MAX_DEPTH = 10
"""Levels of nested object fields, not counting introspection (``__schema`` and below)."""
MAX_TOTAL_DEPTH = 20
"""Levels of nested fields including introspection (``ofType { ofType { … } }``)."""
MAX_ALIASES = 30
MAX_SELECTIONS = 1500
"""Selections (fields, spreads, inline fragments) once every fragment is expanded."""
MAX_SAME_NAME = 10
"""Fields answering under one response name in one (merged) selection set."""
MAX_OVERLAP_COST = 10_000
"""Pairs of same-named fields graphql-core's overlap rule compares, weighted by depth."""
MAX_VALUE_DEPTH = 8
"""Nesting of list and object literals written in the document."""
CACHE_ENTRIES = 256
CACHEABLE_CHARS = 20_000
"""Longer documents are measured every time rather than kept in memory."""

log = logging.getLogger("tandem.graphql")


class QueryRefused(GraphQLError):
    """A document over one of the limits; ``extensions.code`` says which."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


@dataclass(frozen=True)
class _Refusal:
    message: str
    code: str

    def error(self) -> QueryRefused:
        return QueryRefused(self.message, self.code)


@dataclass(frozen=True)
class _Size:
    selections: int
    aliases: int
    depth: int
    total_depth: int


@dataclass
class _Entry:
    document: DocumentNode | None
    refusal: _Refusal | None
    validated: set[tuple[type[Any], ...]]


class _Stop(Exception):
    def __init__(self, refusal: _Refusal) -> None:
        self.refusal = refusal


def _refuse(message: str, code: str) -> _Stop:
    return _Stop(_Refusal(message, code))


def _selections(node: SelectionSetNode | None) -> Sequence[Any]:
    return node.selections if node is not None else ()


def _value_depth(value: ValueNode) -> int:
    """Nesting of a literal, iteratively (a deep literal must not recurse here)."""
    deepest = 0
    stack: list[tuple[ValueNode, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, ListValueNode):
            deepest = max(deepest, level + 1)
            stack.extend((item, level + 1) for item in node.values)
        elif isinstance(node, ObjectValueNode):
            deepest = max(deepest, level + 1)
            stack.extend((item.value, level + 1) for item in node.fields)
    return deepest


class _Measure:
    """One pass over a parsed document; raises ``_Stop`` at the first limit crossed."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        self.operations: list[OperationDefinitionNode] = []
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                self.fragments.setdefault(definition.name.value, definition)
            elif isinstance(definition, OperationDefinitionNode):
                self.operations.append(definition)
        self.sizes: dict[str, _Size] = {}
        self.visiting: set[str] = set()

    def run(self) -> None:
        for fragment in self.fragments.values():
            self._fragment_size(fragment.name.value)
        total = _Size(0, 0, 0, 0)
        for operation in self.operations:
            total = self._add(total, self._set_size(operation.selection_set))
        self._check(total)
        # Under the cap, the expanded document is small enough to walk as the overlap
        # rule will, merging same-named fields level by level.
        cost = 0
        for operation in self.operations:
            cost += self._overlap([operation.selection_set], 1)
            if cost > MAX_OVERLAP_COST:
                raise _refuse(
                    "The query repeats the same fields too often; ask for each field once.",
                    "QUERY_TOO_COMPLEX",
                )

    def _check(self, size: _Size, *, depth: bool = True) -> None:
        """Depth is judged on operations only: a fragment on an introspection type nests
        as deep as ``__schema`` allows, and counts for nothing once spread under it."""
        if size.selections > MAX_SELECTIONS:
            raise _refuse(
                f"The query selects more than {MAX_SELECTIONS} fields once its fragments are "
                "expanded; split it into smaller queries.",
                "QUERY_TOO_COMPLEX",
            )
        if size.aliases > MAX_ALIASES:
            raise _refuse(
                f"The query uses {size.aliases} aliases; at most {MAX_ALIASES} are allowed.",
                "TOO_MANY_ALIASES",
            )
        if depth and (size.depth > MAX_DEPTH or size.total_depth > MAX_TOTAL_DEPTH):
            raise _refuse(
                f"The query nests fields too deeply; at most {MAX_DEPTH} levels are allowed.",
                "QUERY_TOO_DEEP",
            )

    @staticmethod
    def _add(a: _Size, b: _Size) -> _Size:
        return _Size(
            a.selections + b.selections,
            a.aliases + b.aliases,
            max(a.depth, b.depth),
            max(a.total_depth, b.total_depth),
        )

    def _fragment_size(self, name: str) -> _Size:
        known = self.sizes.get(name)
        if known is not None:
            return known
        fragment = self.fragments.get(name)
        if fragment is None:  # unknown fragment: validation names it
            return _Size(0, 0, 0, 0)
        if name in self.visiting:
            raise _refuse(f"Fragment {name[:50]} spreads itself.", "FRAGMENT_CYCLE")
        self.visiting.add(name)
        size = self._set_size(fragment.selection_set)
        self.visiting.discard(name)
        self.sizes[name] = size
        self._check(size, depth=False)
        return size

    def _set_size(self, selection_set: SelectionSetNode | None) -> _Size:
        """Size of a selection set with every spread expanded, iterating over the text
        once (fragments are memoised). Recursion follows the document's own nesting,
        which the parser already bounded."""
        total = _Size(0, 0, 0, 0)
        for selection in _selections(selection_set):
            if isinstance(selection, FieldNode):
                for argument in selection.arguments or ():
                    if _value_depth(argument.value) > MAX_VALUE_DEPTH:
                        raise _refuse(
                            f"An argument nests lists or objects more than {MAX_VALUE_DEPTH} "
                            "levels deep.",
                            "INPUT_TOO_DEEP",
                        )
                sub = self._set_size(selection.selection_set)
                introspection = selection.name.value.startswith("__")
                nested = selection.selection_set is not None
                size = _Size(
                    1 + sub.selections,
                    (1 if selection.alias else 0) + sub.aliases,
                    0 if introspection else (1 + sub.depth if nested else 0),
                    1 + sub.total_depth if nested else 0,
                )
            elif isinstance(selection, InlineFragmentNode):
                sub = self._set_size(selection.selection_set)
                size = _Size(1 + sub.selections, sub.aliases, sub.depth, sub.total_depth)
            elif isinstance(selection, FragmentSpreadNode):
                sub = self._fragment_size(selection.name.value)
                size = _Size(1 + sub.selections, sub.aliases, sub.depth, sub.total_depth)
            else:  # pragma: no cover - the grammar has no other selection
                continue
            total = self._add(total, size)
            if total.selections > MAX_SELECTIONS:
                self._check(total, depth=False)
        return total

    def _flatten(self, sets: list[SelectionSetNode]) -> Iterator[FieldNode]:
        stack: list[tuple[SelectionSetNode, frozenset[str]]] = [(s, frozenset()) for s in sets]
        while stack:
            current, seen = stack.pop()
            for selection in current.selections:
                if isinstance(selection, FieldNode):
                    yield selection
                elif isinstance(selection, InlineFragmentNode):
                    stack.append((selection.selection_set, seen))
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is not None and name not in seen:
                        stack.append((fragment.selection_set, seen | {name}))

    def _overlap(self, sets: list[SelectionSetNode], level: int) -> int:
        groups: dict[str, list[FieldNode]] = {}
        for field in self._flatten(sets):
            key = field.alias.value if field.alias else field.name.value
            groups.setdefault(key, []).append(field)
        cost = 0
        for key, fields in groups.items():
            if len(fields) > MAX_SAME_NAME:
                raise _refuse(
                    f"The query asks for {key[:50]} {len(fields)} times in one place; at most "
                    f"{MAX_SAME_NAME} are allowed.",
                    "QUERY_TOO_COMPLEX",
                )
            cost += level * len(fields) * (len(fields) - 1) // 2
            children = [f.selection_set for f in fields if f.selection_set is not None]
            if children:
                cost += self._overlap(children, level + 1)
        return cost


def measure(document: DocumentNode) -> _Refusal | None:
    """The first limit the document crosses, or ``None``."""
    try:
        _Measure(document).run()
    except _Stop as stop:
        return stop.refusal
    except RecursionError:
        return _Refusal("The query nests too deeply.", "QUERY_TOO_DEEP")
    return None


def _parse(query: str) -> _Entry:
    try:
        document = parse(query, max_tokens=MAX_TOKENS, no_location=False)
    except GraphQLError as error:
        if "tokens" in error.message:
            refusal = _Refusal(
                f"The query has more than {MAX_TOKENS} tokens; split it into smaller queries.",
                "QUERY_TOO_LARGE",
            )
        else:
            refusal = _Refusal(error.message, "GRAPHQL_PARSE_FAILED")
        return _Entry(None, refusal, set())
    except RecursionError:
        return _Entry(None, _Refusal("The query nests too deeply.", "QUERY_TOO_DEEP"), set())
    return _Entry(document, measure(document), set())


class DocumentCache:
    """LRU of parsed and measured documents, keyed by their text."""

    def __init__(self, entries: int = CACHE_ENTRIES, cacheable_chars: int = CACHEABLE_CHARS):
        self.entries = entries
        self.cacheable_chars = cacheable_chars
        self._items: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, query: str) -> _Entry | None:
        with self._lock:
            entry = self._items.get(query)
            if entry is not None:
                self._items.move_to_end(query)
            return entry

    def get(self, query: str) -> _Entry:
        with self._lock:
            entry = self._items.get(query)
            if entry is not None:
                self._items.move_to_end(query)
                return entry
        entry = _parse(query)
        if len(query) <= self.cacheable_chars:
            with self._lock:
                self._items[query] = entry
                self._items.move_to_end(query)
                while len(self._items) > self.entries:
                    self._items.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


DOCUMENTS = DocumentCache()

_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="graphql-validate")
"""Few threads, so under a flood of new documents the event loop still gets most of the
interpreter (the GIL is shared): refusals queue here, ``/healthz`` and cached queries do not."""


class BoundedDocuments(SchemaExtension):
    """Parse from the cache, refuse over-limit documents, and reuse validations.

    Runs in place of strawberry's own parse step (it sets ``graphql_document``) and of its
    validation (it sets ``pre_execution_errors``). A cache miss parses, measures and
    validates in a worker thread: each step is bounded, but the event loop must stay free
    for other requests (``/healthz``, ordinary queries) while many such steps run."""

    def __init__(self, cache: DocumentCache | None = None) -> None:
        super().__init__()
        self.cache = cache or DOCUMENTS
        self.entry: _Entry | None = None

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is None:
            entry = self.cache.peek(context.query)
            if entry is None:
                loop = asyncio.get_running_loop()
                entry = await loop.run_in_executor(_WORKERS, self.cache.get, context.query)
            if entry.refusal is not None:
                raise entry.refusal.error()
            self.entry = entry
            context.graphql_document = entry.document
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        entry = self.entry
        rules = tuple(context.validation_rules)
        if entry is not None and entry.document is not None and rules:
            if rules in entry.validated:
                context.pre_execution_errors = []
            else:
                errors = await asyncio.get_running_loop().run_in_executor(
                    _WORKERS, validate_document, context.schema._schema, entry.document, rules
                )
                context.pre_execution_errors = errors
                if not errors:
                    entry.validated.add(rules)
        yield
