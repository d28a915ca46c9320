"""``live.paging.Page``: the cursor says whether another page follows, from the one
row read past the page."""

from __future__ import annotations

import pytest
from sqlalchemy import column, select, table

from live.paging import Page

items = table("items", column("id"))


def test_cut_keeps_the_page_and_names_the_next_cursor() -> None:
    page = Page(3)
    assert page.cut([9, 8, 7, 6], lambda i: i, str).items == ["9", "8", "7"]
    assert page.cut([9, 8, 7, 6], lambda i: i, str).next_cursor == 7
    assert page.cut([9, 8, 7], lambda i: i, str).next_cursor is None  # exactly full: last
    assert page.cut([], lambda i: i, str).next_cursor is None
    listing = Page(2, newest_first=False).cut([1, 2, 3], lambda i: i, lambda i: i)
    assert Page(2, newest_first=False).answer("things", listing) == {
        "things": [1, 2],
        "next_after_id": 2,
    }
    assert page.answer("things", page.cut([5], lambda i: i, lambda i: i)) == {
        "things": [5],
        "next_before_id": None,
    }


def test_select_orders_filters_and_reads_one_more() -> None:
    newest = str(Page(10, cursor=50).select(select(items), items.c.id))
    assert "WHERE items.id < :id_1" in newest and "ORDER BY items.id DESC" in newest
    assert "LIMIT :param_1" in newest
    oldest = str(Page(10, cursor=50, newest_first=False).select(select(items), items.c.id))
    assert "WHERE items.id > :id_1" in oldest and "ORDER BY items.id" in oldest
    compiled = Page(10).select(select(items), items.c.id).compile()
    assert compiled.params["param_1"] == 11
    with pytest.raises(ValueError):
        Page(0)
