"""One window on a list: ``limit``/``offset`` in, ``items``/``total`` out.

Every list the JSON API returns goes through here: a query is counted and windowed in SQL (the
caller gives it a stable ORDER BY ending in the id, so pages never overlap or skip), and a list
the service computes in Python (rule sets from files, lot balances) is windowed after the fact.
``Paged`` is a read-only sequence of its items, so pages and templates that iterated the old
lists keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_LIMIT = 50
"""Items per page when the client does not say."""
MAX_LIMIT = 500
"""The most items one page may hold."""
MAX_OFFSET = 10_000_000
"""The furthest a client may skip (beyond any real list; keeps the number sane)."""


@dataclass(frozen=True, eq=False)
class Paged(Sequence[T]):
    """One page of a list: the items, how many there are in all, and the window asked for.

    ``limit`` is None when the caller asked for the whole list (the pages do)."""

    items: list[T]
    total: int
    limit: int | None = None
    offset: int = 0

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        """Equal to a page with the same window and items, or to a list of the same items."""
        if isinstance(other, Paged):
            return (self.items, self.total, self.limit, self.offset) == (
                other.items, other.total, other.limit, other.offset)
        if isinstance(other, list | tuple):
            return self.items == list(other)
        return NotImplemented
    # Unhashable (it holds a list): defining __eq__ without __hash__ leaves __hash__ None.

    def map(self, fn: Callable[[T], U]) -> Paged[U]:
        """The same window with every item converted by ``fn``."""
        return Paged([fn(x) for x in self.items], self.total, self.limit, self.offset)


def clamp(limit: int | None, offset: int = 0) -> tuple[int | None, int]:
    """A window the database can run: a limit between 1 and MAX_LIMIT (or None: all) and an
    offset between 0 and MAX_OFFSET. The API refuses out-of-range values with a 422 before
    they get here; this guards the service callers."""
    if limit is not None:
        limit = max(1, min(int(limit), MAX_LIMIT))
    return limit, max(0, min(int(offset), MAX_OFFSET))


def page_rows(s: Session, stmt: Select[*tuple[Any, ...]], limit: int | None = None,
              offset: int = 0, *, scalars: bool = True) -> Paged[Any]:
    """Count ``stmt`` and fetch one window of it, both in SQL.

    ``stmt`` must already be ordered with the id as the last key (a stable order); the count
    drops that order. ``scalars`` gives the first column of each row (an ORM object) rather
    than the row."""
    limit, offset = clamp(limit, offset)
    total = s.execute(select(func.count()).select_from(stmt.order_by(None).subquery())
                      ).scalar_one()
    windowed = stmt.offset(offset) if offset else stmt
    if limit is not None:
        windowed = windowed.limit(limit)
    result = s.execute(windowed)
    rows: list[Any] = list(result.scalars().all()) if scalars else list(result.all())
    return Paged(rows, int(total), limit, offset)


def page_list(items: Sequence[T], limit: int | None = None, offset: int = 0) -> Paged[T]:
    """One window of a list the service built in Python (not from one query)."""
    limit, offset = clamp(limit, offset)
    end = None if limit is None else offset + limit
    return Paged(list(items[offset:end]), len(items), limit, offset)
