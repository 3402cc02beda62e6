"""Slugs made from titles, comment numbers, and RealWorld's timestamps: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from bloghub.api.conduit import ENDPOINTS
from bloghub.api.conduit.views import timestamp
from bloghub.commands.comment_numbers import draw_number
from bloghub.commands.slugs import MAX_BASE_CHARS, ROUTE_NAMES, same_base, slug_base


def test_a_slug_is_the_titles_words_in_lower_case_joined_by_hyphens() -> None:
    assert slug_base("How to Train Your Dragon") == "how-to-train-your-dragon"
    assert slug_base("  C'est   déjà l'été! ") == "c-est-déjà-l-été"
    assert slug_base("你好\uff0c世界") == "你好-世界"  # a full-width comma
    assert slug_base("?!#") == "article"


@given(st.text(min_size=1, max_size=300))
def test_every_title_gives_a_url_safe_bounded_slug(title: str) -> None:
    slug = slug_base(title)
    assert 1 <= len(slug) <= MAX_BASE_CHARS
    assert "/" not in slug
    assert not slug.startswith("-")
    assert not slug.endswith("-")
    assert slug == slug_base(slug), "a slug is its own slug"


def test_a_title_change_keeps_the_slug_only_when_its_slug_form_is_the_same() -> None:
    assert same_base("dragons", "Dragons!")
    assert same_base("dragons-0a1b2c3d", "dragons"), "a suffixed slug of the same title"
    assert not same_base("dragons-and-kn", "Dragons")
    assert not same_base("dragons", "Dragons and knights")
    assert not same_base("dragons-and-knights", "Dragons"), "not a suffix of ours"
    assert not same_base(None, "Dragons")


def test_every_fixed_name_under_articles_is_a_slug_no_article_gets() -> None:
    """`/api/articles/feed` is the feed's route: an article slugged `feed` would be hidden
    behind it. A new route of that form must be named to the slugs."""
    fixed = {
        ep.path.split("/")[2]
        for ep in ENDPOINTS
        if ep.path.startswith("/articles/") and "{" not in ep.path.split("/")[2]
    }
    assert "feed" in fixed
    assert fixed <= ROUTE_NAMES
    assert not same_base("feed", "Feed"), "a slug taken before it was a route's moves on"
    assert same_base("feed-0a1b2c3d", "Feed")


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=8)))
    assert timestamp(at) == "2026-01-01T19:04:05.678Z"
    assert timestamp(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00.000Z"


@given(st.integers(min_value=0, max_value=(2**53 - 1) // 4096 - 1))
def test_comment_numbers_are_exact_in_javascript_and_grow_with_time(ms: int) -> None:
    number = draw_number(ms)
    assert 0 <= number < 2**53
    assert draw_number(ms + 1) > number, "a later millisecond draws a larger number"
    assert ms * 4096 <= number < (ms + 1) * 4096
