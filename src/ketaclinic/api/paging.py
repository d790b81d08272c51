"""Pagination of every list the JSON API returns: ``?limit=&offset=`` in, a ``Page`` out.

``GET`` routes that return a list declare ``window: PageDep`` and ``response_model=Page[...]``
(a test walks the OpenAPI schema and fails on a list route without both). Out-of-range or
non-integer values are refused with 422 and the parameter's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

from ketaclinic.services.paging import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, Paged

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: ``total`` items in all, ``items`` from ``offset`` on (at most
    ``limit``)."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class Window:
    limit: int
    offset: int

    def page(self, paged: Paged[Any], items: list[Any] | None = None) -> dict[str, Any]:
        """The response of one page; ``items`` replaces the service's items (converted).
        Plain dicts are encoded as the routes returned them before (numbers stay numbers)."""
        rows = paged.items if items is None else items
        return {"items": [jsonable_encoder(x) if isinstance(x, dict) else x for x in rows],
                "total": paged.total, "limit": self.limit, "offset": self.offset}


def page_window(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=(
        f"Items per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"))] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=(
        "Items to skip from the start of the list"))] = 0,
) -> Window:
    return Window(limit, offset)


PageDep = Annotated[Window, Depends(page_window)]
