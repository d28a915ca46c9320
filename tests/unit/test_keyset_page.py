"""``live.paging.Page``: the cursor says whether another page follows, from the one
row read past the page."""

from __future__ import annotations

import pytest
from sqlalchemy import column, select, table

from live.paging import Page, RankedPage

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


def test_a_ranked_page_names_the_last_items_key_and_id() -> None:
    page = RankedPage(2)
    listing = page.cut([(9, 4), (9, 2), (5, 7)], lambda r: r, lambda r: r[1])
    assert (listing.items, listing.next_after) == ([4, 2], "9.2")
    assert page.cut([(9, 4)], lambda r: r, lambda r: r[1]).next_after is None
    assert RankedPage.cursor("9.2") == (9, 2)
    for bad in ("", "9", "9.", ".2", "-1.2", "9.2.1", "1e3.2", "٣.2", "1.2147483648"):
        with pytest.raises(ValueError):
            RankedPage.cursor(bad)


def test_a_ranked_select_orders_by_key_then_id_past_the_cursor() -> None:
    ranked = table("ranked", column("id"), column("score"))
    down = RankedPage(2, (9, 4)).select(select(ranked.c.id), ranked.c.score, ranked.c.id)
    sql = str(down.compile(compile_kwargs={"literal_binds": True}))
    assert "ORDER BY ranked.score DESC, ranked.id DESC" in sql
    assert "ranked.score < 9 OR ranked.score = 9 AND ranked.id < 4" in sql
    assert "LIMIT 3" in sql
    up = RankedPage(2, (9, 4), descending=False).select(
        select(ranked.c.id), ranked.c.score, ranked.c.id
    )
    sql = str(up.compile(compile_kwargs={"literal_binds": True}))
    assert "ORDER BY ranked.score, ranked.id" in sql
    assert "ranked.score > 9 OR ranked.score = 9 AND ranked.id > 4" in sql
