"""The article search projector: one document per article that was ever published or
liked, with its published text, tags, author, publish time and like count.

Its events come from two topics with no order between them: the article's own (publish,
withdraw, delete) and the interactions (likes). Each document keeps the article version
and the interactions offset it has applied; an event at or below them is already in it.
Writes are compare-and-set on the document read (search_sink.py), so the two streams
never overwrite each other's part. A like may arrive before the publish it
follows (another topic, another lane): it lands in a document without text (state
``none``) that the publish then fills in.
"""

from __future__ import annotations

from typing import Any

from bloghub.adapters.search_indexes import ARTICLES, ARTICLES_BODY
from bloghub.events.articles import ArticleDeleted, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Recorded
from bloghub.events.interactions import ArticleLiked, ArticleUnliked
from bloghub.events.topics import Family
from bloghub.projections.search_sink import SearchProjector

_ARTICLE_EVENTS = (ArticlePublished, ArticleWithdrawn, ArticleDeleted)
_LIKE_EVENTS = (ArticleLiked, ArticleUnliked)
_TEXT = ("title", "content", "tags")


def empty_article(article_id: str) -> dict[str, Any]:
    return {"id": article_id, "state": "none", "like_count": 0, "v": 0, "lo": -1}


def fold_article(current: dict[str, Any], records: list[Recorded]) -> dict[str, Any]:
    """``current`` with ``records`` applied; each event only if the document has not seen it."""
    doc = dict(current)
    for rec in records:
        ev = rec.event
        if isinstance(ev, _ARTICLE_EVENTS):
            if ev.version <= doc["v"]:
                continue
            doc["v"], doc["author_id"] = ev.version, ev.author_id
            if isinstance(ev, ArticlePublished):
                doc.update(state="published", title=ev.title, content=ev.content, tags=ev.tags)
                # The first publish dates the article; a re-publish keeps its date.
                doc.setdefault("published_at", rec.envelope.occurred_at.isoformat())
            else:
                doc["state"] = "withdrawn" if isinstance(ev, ArticleWithdrawn) else "deleted"
                for name in _TEXT:
                    doc.pop(name, None)
        elif isinstance(ev, _LIKE_EVENTS):
            if rec.offset <= doc["lo"]:
                continue
            step = 1 if isinstance(ev, ArticleLiked) else -1
            doc["lo"], doc["author_id"] = rec.offset, ev.author_id
            doc["like_count"] = max(0, doc["like_count"] + step)
    return doc


class ArticleSearchProjector(SearchProjector):
    name = ARTICLES
    families: tuple[Family, ...] = (Family.ARTICLES, Family.INTERACTIONS)

    def index_body(self) -> dict[str, Any]:
        return ARTICLES_BODY

    def doc_id(self, record: Recorded) -> str | None:
        ev = record.event
        if isinstance(ev, (*_ARTICLE_EVENTS, *_LIKE_EVENTS)):
            return ev.article_id
        return None

    def fold(
        self, doc_id: str, current: dict[str, Any] | None, records: list[Recorded]
    ) -> dict[str, Any] | None:
        before = current or empty_article(doc_id)
        after = fold_article(before, records)
        return None if after == before else after
