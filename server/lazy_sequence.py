"""A sequence whose length is known at once and whose items are built on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class BuiltOnFirstUse(Sequence[T], Generic[T]):
    """``count`` items that ``build`` makes when one is first read (once): an answer that
    needs only how many there are, or another form of them, never builds them."""

    __slots__ = ("_build", "_count", "_items")

    def __init__(self, count: int, build: Callable[[], Iterable[T]]) -> None:
        self._count = count
        self._build: Callable[[], Iterable[T]] | None = build
        self._items: list[T] | None = None

    def items(self) -> list[T]:
        if self._items is None:
            assert self._build is not None
            items = list(self._build())
            if len(items) != self._count:
                raise ValueError(f"{len(items)} items were built where {self._count} were counted")
            self._items, self._build = items, None  # let go of what the builder held
        return self._items

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BuiltOnFirstUse | list | tuple):
            return self.items() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"
