"""Unit tests (no network): text cleaning, keyword matching, rate buckets."""

from __future__ import annotations

import pytest

from chat.text import blocked_word, clean_text, normalise_keywords
from live.limits import Bucket


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("hello", "hello"),
        ("  padded\t", "padded"),
        ("line\nbreak\r\nhere", "line break  here"),
        ("bell\x07null\x00del\x7f", "bellnulldel"),
        ("\u202eevil\u202c", "evil"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("家人们好 👍", "家人们好 👍"),
        ("\u2028\u2029", ""),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_keywords_fold_case_and_width() -> None:
    words = normalise_keywords(["Scam", "scam ", "", "  ", "\uff26\uff21\uff2b\uff25"])
    assert words == ["fake", "scam"]
    assert blocked_word("This is a SCAM!", words) == "scam"
    assert blocked_word("totally fake", words) == "fake"
    assert blocked_word("all good", words) is None


def test_bucket_on_the_server_clock() -> None:
    bucket = Bucket(rate=2, burst=2, now_ms=0)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.retry_after_ms(0) == 501
    assert not bucket.take(499)
    assert bucket.take(500)
