"""Slugs of scripts written with combining marks (Devanagari, Thai, vowelled Arabic): the
marks stay with their letters, so a word of the title is one word of the slug."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.commands.slugs import MAX_BASE_CHARS, slug_base

# Letters, marks and digits of scripts that write vowels (or more) as combining marks.
SCRIPTS = {
    "devanagari": (0x0900, 0x097F),
    "thai": (0x0E00, 0x0E7F),
    "arabic": (0x0600, 0x06FF),
    "bengali": (0x0980, 0x09FF),
    "tamil": (0x0B80, 0x0BFF),
    "hebrew": (0x0590, 0x05FF),
}


def _word(low: int, high: int) -> st.SearchStrategy[str]:
    letters = st.characters(min_codepoint=low, max_codepoint=high, categories=("L", "M", "Nd"))
    return st.text(letters, min_size=1, max_size=8)


def _words() -> st.SearchStrategy[list[str]]:
    script = st.sampled_from(sorted(SCRIPTS.values()))
    return script.flatmap(lambda span: st.lists(_word(*span), min_size=1, max_size=3))


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("नमस्ते दुनिया", "नमस्ते-दुनिया"),
        ("สวัสดี ชาวโลก", "สวัสดี-ชาวโลก"),
        ("مَرْحَبًا بِالْعَالَمِ", "مَرْحَبًا-بِالْعَالَمِ"),
        ("Cafe\u0301 Crème", "café-crème"),  # an accent written apart is composed
    ],
)
def test_marks_stay_with_their_letters(title: str, slug: str) -> None:
    assert slug_base(title) == slug


@given(_words())
def test_a_slug_never_splits_inside_a_word(words: list[str]) -> None:
    slug = slug_base(" ".join(words))
    pieces = [slug_base(word) for word in words]
    assert all("-" not in piece for piece in pieces), pieces
    assert slug == "-".join(pieces)


@given(st.text(st.sampled_from("कखग\u093f\u093e\u094d\u0902"), min_size=MAX_BASE_CHARS + 1))
def test_a_long_slug_is_cut_between_letters_never_before_a_mark(title: str) -> None:
    slug = slug_base(title)
    assert len(slug) <= MAX_BASE_CHARS
    assert title.startswith(slug) or slug == "article", "only a cut, at the end"
    rest = title[len(slug) :]
    assert slug == "article" or not unicodedata.category(rest[0]).startswith("M")
