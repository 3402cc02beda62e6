"""A tag filter takes every form the tag lists can show a tag in, and finds that tag by it:
folding (``tag_key``) can make a tag of 32 characters 18 times longer, and begin it with
a space (a spacing accent's)."""

from __future__ import annotations

import sys
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bloghub.api.v1.article_schemas import (
    FILTER_TAG_CHARS,
    FILTER_TAG_PATTERN,
    ListingQuery,
    filter_tag,
    normal_tag,
)
from bloghub.api.v1.schemas import Rule
from bloghub.readmodels import tag_key

DOCUMENTED = Rule(FILTER_TAG_PATTERN, "")


@cache
def every_character() -> list[str]:
    return [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def test_no_character_folds_longer_than_the_bound_assumes() -> None:
    longest = max(every_character(), key=lambda c: len(tag_key(c)))
    assert longest == "\ufdfa"
    assert len(tag_key(longest)) * 32 == FILTER_TAG_CHARS


def tags_of(c: str) -> list[str]:
    """Tags with ``c``: alone, after a word, after a word and a space, 32 of it."""
    tags = []
    for written in (c, "a" + c, "a " + c, c * 32):
        try:
            tags.append(normal_tag(written))
        except ValueError:
            continue
    return tags


def test_every_listed_form_of_a_tag_finds_that_tag() -> None:
    # What folding changes: compatibility forms, capitals, traditional Chinese characters.
    for c in (c for c in every_character() if tag_key(c) != c):
        for tag in tags_of(c):
            listed = tag_key(tag)
            found = ListingQuery.model_validate({"tag": listed}).tag
            assert found is not None
            assert tag_key(found) == listed, (c, tag)
            assert tag_key(filter_tag(tag)) == listed, (c, tag)
            assert DOCUMENTED.matches(listed), (c, tag)


@pytest.mark.parametrize(
    ("written", "listed"),
    [
        ("\uffe3", " \u0304"),
        ("a\u00a8", "a \u0308"),
        ("a \uffe3", "a  \u0304"),
        ("\u3231" * 32, "(\u682a)" * 32),
    ],
)
def test_a_tag_listed_with_the_space_of_an_accent_is_found_by_that_form(
    written: str, listed: str
) -> None:
    assert tag_key(normal_tag(written)) == listed
    assert filter_tag(listed) == listed


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("  Python ", "Python"), ("data\u3000 base", "data base"), ("\ttag\n", "tag")],
)
def test_spaces_typed_around_and_between_words_are_folded_as_a_kept_tags(
    sent: str, kept: str
) -> None:
    assert filter_tag(sent) == kept == normal_tag(sent)


@given(st.text(st.sampled_from(["a", "\u5b57", " ", "\u00a0", "\u3000", "\u2003", "\t", "\n"])))
def test_a_filter_with_no_accent_is_the_tag_as_kept(sent: str) -> None:
    try:
        kept = normal_tag(sent)
    except ValueError:
        return
    assert filter_tag(sent) == kept


def test_a_filter_longer_than_any_tag_is_refused_saying_so() -> None:
    with pytest.raises(ValidationError, match="at most 576 characters"):
        ListingQuery.model_validate({"tag": "t" * 577})
    with pytest.raises(ValidationError, match="longer than any tag"):
        ListingQuery.model_validate({"tag": "\ufdfa" * 33})
