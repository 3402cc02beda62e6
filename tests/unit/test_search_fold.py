"""Article search documents are folds of two streams with no order between them: the
article's own events and its likes. Whatever the interleaving, the batching or the
re-deliveries, the document ends the same, and neither of its guards ever goes back."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bloghub.events.articles import ArticleDeleted, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Recorded
from bloghub.events.interactions import ArticleLiked, ArticleUnliked
from bloghub.projections.search import empty_article, fold_article
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


def like_stream(likes: list[bool]) -> list[Recorded]:
    out, liked = [], 0
    for i, like in enumerate(likes):
        kind = ArticleLiked if like or liked == 0 else ArticleUnliked
        liked += 1 if kind is ArticleLiked else -1
        ev = kind(**IDS, user_id=AUTHOR)
        out.append(recorded(ev, topic="p.interactions", partition=1, offset=10 + i * 7))
    return out


def guards(doc: dict[str, Any]) -> tuple[int, int]:
    return doc["v"], doc["lo"]


streams = st.tuples(
    st.lists(st.sampled_from(["publish", "withdraw", "delete"]), max_size=6),
    st.lists(st.booleans(), max_size=12),
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Recorded], list[Recorded]]:
    """The canonical order, and one delivery: interleaved, with repeats of earlier records."""
    kinds, likes = draw(streams)
    a, b = article_stream(kinds), like_stream(likes)
    picks = draw(st.permutations([0] * len(a) + [1] * len(b)))
    queues, order = [list(a), list(b)], []
    for pick in picks:
        order.append(queues[pick].pop(0))
        if draw(st.booleans()) and order:
            order.append(draw(st.sampled_from(order)))  # a re-delivery
    return a + b, order


@given(deliveries(), st.integers(1, 5))
def test_any_interleaving_and_redelivery_folds_to_the_same_document(
    case: tuple[list[Recorded], list[Recorded]], batch: int
) -> None:
    canonical, delivered = case
    expected = fold_article(empty_article(ARTICLE), canonical)
    doc = empty_article(ARTICLE)
    seen = [guards(doc)]
    for start in range(0, len(delivered), batch):
        doc = fold_article(doc, delivered[start : start + batch])
        seen.append(guards(doc))
    assert doc == expected
    for before, after in itertools.pairwise(seen):
        assert after[0] >= before[0], "the article went back"
        assert after[1] >= before[1], "the likes went back"


def test_a_like_before_the_publish_is_kept_and_the_text_goes_with_a_withdrawal() -> None:
    like = like_stream([True])
    publish, withdraw = article_stream(["publish", "withdraw"])
    doc = fold_article(empty_article(ARTICLE), like)
    assert doc["state"] == "none"
    assert doc["like_count"] == 1
    doc = fold_article(doc, [publish])
    assert (doc["state"], doc["title"], doc["like_count"]) == ("published", "t2", 1)
    doc = fold_article(doc, [withdraw])
    assert doc["state"] == "withdrawn"
    assert "title" not in doc
    assert "content" not in doc
    assert fold_article(doc, [publish]) == doc, "an older publish cannot bring it back"
