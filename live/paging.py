"""Keyset pages for every list the API answers.

Every list is kept in id order and read a page at a time:

* newest first (sessions, products, cooperations, orders, the moderation log): ask
  ``?limit=N&before_id=ID``; the answer carries ``next_before_id``;
* oldest first (pins, flash sales, moderators, an agency's hosts): ask
  ``?limit=N&after_id=ID``; the answer carries ``next_after_id``.

The next cursor is the id of the page's last item when more items follow, else
``null``: keep asking with it until it is ``null``. Each route documents its largest
``limit`` (a larger one is 422 ``page_too_large``) and its default. Keyset paging never
skips or repeats an item while others are added (a new item lands on the first page
of a newest-first list, or the last of an oldest-first one).

A service takes a ``Page``, lets it order and cut its query (``select``: one row more
than asked, so it knows whether more follow) and returns ``page.cut(rows)``.

A list sorted by something else than its id (the creator directory: by followers, by
price...) is read with a ``RankedPage``: ordered by an integer key, ties by id, and its
cursor ``?after=KEY.ID`` names the last item's place in that order (the answer carries
``next_after``). It skips or repeats nothing while items are added; an item whose key
changes between two pages may move across the cursor (seen twice or not at all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import QueryableAttribute

T = TypeVar("T")
RowT = TypeVar("RowT")
Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """One page of a list: its items and the cursor for the next (None: the last)."""

    items: list[T]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class Page:
    """At most ``limit`` items past ``cursor`` in id order: ids below it when
    ``newest_first``, above it otherwise (no cursor: from the start)."""

    limit: int
    cursor: int | None = None
    newest_first: bool = True

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a page holds at least one item, not {self.limit}")

    @property
    def cursor_name(self) -> str:
        """The query parameter that carries the cursor: ``before_id`` or ``after_id``."""
        return "before_id" if self.newest_first else "after_id"

    def select(
        self, query: Query, id_column: ColumnElement[int] | QueryableAttribute[int]
    ) -> Query:
        """``query`` ordered by ``id_column``, past the cursor, ``limit + 1`` rows."""
        if self.newest_first:
            query = query.order_by(id_column.desc())
            if self.cursor is not None:
                query = query.where(id_column < self.cursor)
        else:
            query = query.order_by(id_column)
            if self.cursor is not None:
                query = query.where(id_column > self.cursor)
        return query.limit(self.limit + 1)

    def cut(
        self,
        rows: Sequence[RowT],
        id_of: Callable[[RowT], int],
        to_item: Callable[[RowT], T],
    ) -> Listing[T]:
        """The page of ``rows`` (read with ``select``) as items, and the next cursor."""
        kept = rows[: self.limit]
        more = len(rows) > self.limit and bool(kept)
        return Listing([to_item(r) for r in kept], id_of(kept[-1]) if more else None)

    def answer(self, key: str, listing: Listing[Any]) -> dict[str, Any]:
        """The JSON answer: ``{key: [...], "next_before_id" | "next_after_id": id}``."""
        return {key: listing.items, f"next_{self.cursor_name}": listing.next_cursor}


#: a ``RankedPage`` cursor: ``KEY.ID`` (both non-negative integers; an id is at most
#: 2**31 - 1, as every id column holds)
RANKED_CURSOR = r"^\d{1,18}\.\d{1,10}$"
_MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class RankedListing(Generic[T]):
    """One page of a ranked list: its items and the cursor for the next (None: the last)."""

    items: list[T]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class RankedPage:
    """At most ``limit`` items in (key, id) order, highest first when ``descending``,
    past ``after`` (the previous page's last item's key and id; None: from the start)."""

    limit: int
    after: tuple[int, int] | None = None
    descending: bool = True

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a page holds at least one item, not {self.limit}")

    @staticmethod
    def cursor(text: str) -> tuple[int, int]:
        """``"KEY.ID"`` as ``(key, id)``; ``ValueError`` unless it matches
        ``RANKED_CURSOR``."""
        key, _, id_ = text.partition(".")
        if not (key.isdecimal() and id_.isdecimal() and key.isascii() and id_.isascii()):
            raise ValueError(f"a cursor is KEY.ID, not {text!r}")
        if len(key) > 18 or len(id_) > 10 or int(id_) > _MAX_ID:
            raise ValueError("the cursor is out of range")
        return int(key), int(id_)

    def select(
        self,
        query: Query,
        key: ColumnElement[int],
        id_column: ColumnElement[int] | QueryableAttribute[int],
    ) -> Query:
        """``query`` ordered by ``key`` then ``id_column``, past the cursor, ``limit + 1``
        rows. ``key`` must hold any cursor's key (a ``BigInteger``: 18 digits)."""
        if self.descending:
            query = query.order_by(key.desc(), id_column.desc())
        else:
            query = query.order_by(key, id_column)
        if self.after is not None:
            value, last = self.after
            if self.descending:
                query = query.where(or_(key < value, and_(key == value, id_column < last)))
            else:
                query = query.where(or_(key > value, and_(key == value, id_column > last)))
        return query.limit(self.limit + 1)

    def cut(
        self,
        rows: Sequence[RowT],
        place_of: Callable[[RowT], tuple[int, int]],
        to_item: Callable[[RowT], T],
    ) -> RankedListing[T]:
        """The page of ``rows`` (read with ``select``) as items, and the next cursor."""
        kept = rows[: self.limit]
        if len(rows) > self.limit and kept:
            key, id_ = place_of(kept[-1])
            return RankedListing([to_item(r) for r in kept], f"{key}.{id_}")
        return RankedListing([to_item(r) for r in kept], None)
