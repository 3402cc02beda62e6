"""Article search documents are folds of the article's own events, applied past the
version the document holds. Whatever the batching or the re-deliveries, the document ends
the same and never goes back; likes are not part of it (their counts are the
interactions read model's)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bloghub.events.articles import ArticleDeleted, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Recorded
from bloghub.events.interactions import ArticleLiked
from bloghub.events.topics import Family
from bloghub.projections.search import ArticleSearchProjector, empty_article, fold_article
from tests.support import recorded

ARTICLE = "01a21c55-c7a4-73d1-a44c-16eb1e146e7d"
AUTHOR = "01a21c55-c7a4-73d1-a44c-16eb1e146e7e"
IDS = {"article_id": ARTICLE, "author_id": AUTHOR}


def article_stream(kinds: list[str]) -> list[Recorded]:
    out = []
    for version, kind in enumerate(kinds, start=2):
        if kind == "publish":
            ev: Any = ArticlePublished(
                **IDS, version=version, title=f"t{version}", content="c", tags=["x"]
            )
        elif kind == "withdraw":
            ev = ArticleWithdrawn(**IDS, version=version)
        else:
            ev = ArticleDeleted(**IDS, version=version)
        out.append(recorded(ev, topic="p.articles", partition=0, offset=version * 3))
    return out


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Recorded], list[Recorded]]:
    """The canonical order, and one delivery: in order, with repeats of earlier records."""
    canonical = article_stream(
        draw(st.lists(st.sampled_from(["publish", "withdraw", "delete"]), max_size=8))
    )
    order: list[Recorded] = []
    for rec in canonical:
        order.append(rec)
        if draw(st.booleans()):
            order.append(draw(st.sampled_from(order)))  # a re-delivery
    return canonical, order


@given(deliveries(), st.integers(1, 5))
def test_any_batching_and_redelivery_folds_to_the_same_document(
    case: tuple[list[Recorded], list[Recorded]], batch: int
) -> None:
    canonical, delivered = case
    expected = fold_article(empty_article(ARTICLE), canonical)
    doc = empty_article(ARTICLE)
    seen = [doc["v"]]
    for start in range(0, len(delivered), batch):
        doc = fold_article(doc, delivered[start : start + batch])
        seen.append(doc["v"])
    assert doc == expected
    for before, after in itertools.pairwise(seen):
        assert after >= before, "the article went back"


def test_the_text_goes_with_a_withdrawal_and_an_older_publish_cannot_bring_it_back() -> None:
    publish, withdraw = article_stream(["publish", "withdraw"])
    doc = fold_article(empty_article(ARTICLE), [publish])
    assert (doc["state"], doc["title"]) == ("published", "t2")
    doc = fold_article(doc, [withdraw])
    assert doc["state"] == "withdrawn"
    assert "title" not in doc
    assert "content" not in doc
    assert fold_article(doc, [publish]) == doc


def test_likes_are_not_the_search_projectors_to_count() -> None:
    """Each like is recorded, a second one by the same reader too; a count kept by adding
    like events would count it twice. The projector does not read the interactions."""
    like = recorded(
        ArticleLiked(**IDS, user_id=AUTHOR), topic="p.interactions", partition=1, offset=1
    )
    assert ArticleSearchProjector.families == (Family.ARTICLES,)
    assert "like_count" not in fold_article(empty_article(ARTICLE), [like])
    assert fold_article(empty_article(ARTICLE), [like]) == empty_article(ARTICLE)
