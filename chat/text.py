"""Chat text rules: what is stripped from a message and how the keyword list matches.

Messages are plain text. The server never escapes or interprets markup: clients must
render ``text`` as text (``textContent``), never as HTML.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Invisible format characters that can reorder or hide text (bidi overrides, zero-width
# spaces, BOM). The zero-width joiner stays: emoji sequences need it.
_FORMAT_STRIPPED = frozenset(
    "\u061c\u200b\u200c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff"
)
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_text(text: str) -> str:
    """``text`` without control characters, line breaks as spaces, trimmed."""
    out: list[str] = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif ch in _FORMAT_STRIPPED or unicodedata.category(ch) in _STRIPPED_CATEGORIES:
            continue
        else:
            out.append(ch)
    return "".join(out).strip()


def fold(text: str) -> str:
    """The form keywords and messages are compared in (NFKC, case-folded)."""
    return unicodedata.normalize("NFKC", text).casefold()


def normalise_keywords(words: Iterable[str]) -> list[str]:
    """Folded, cleaned, de-duplicated, sorted; empty entries dropped."""
    return sorted({fold(clean_text(word)) for word in words} - {""})


def blocked_word(text: str, keywords: Iterable[str]) -> str | None:
    """The first listed keyword ``text`` contains (substring match, so it also works for
    languages written without spaces), or None."""
    folded = fold(text)
    for word in keywords:
        if word in folded:
            return word
    return None
