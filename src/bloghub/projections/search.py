"""The article search projector: one document per article that was ever published, with
its published text, tags, author and publish time.

A batch sends each document it touches one scripted update carrying the article's state
at its version; OpenSearch applies it only past the version the document holds when the
write lands (search_indexes.ARTICLE_SCRIPT), so nothing is read before writing and no
write can take the document back.

Counts are not kept here. A like count in the document could only add and subtract like
events, and a reader who likes twice (each like is recorded: the interactions projector
keeps the set) would count twice; search results show the counts of the interactions read
model instead, the same numbers an article's detail shows (api/v1/search.py).

``fold_article`` is the same rule in Python: the reference the script is tested against,
and what the benchmark uses to build the documents ``_bulk`` alone sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bloghub.adapters.search_indexes import (
    ARTICLE_PROPERTIES_ADDED,
    ARTICLE_SCRIPT,
    ARTICLES,
    ARTICLES_BODY,
    indexed,
)
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
)
from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family
from bloghub.projections.search_sink import SearchProjector
from bloghub.readmodels import tag_key

_ARTICLE_EVENTS = (ArticlePublished, ArticleWithdrawn, ArticleDeleted)
_TEXT = ("title", "content", "tags", "tag_keys")


def empty_article(article_id: str) -> dict[str, Any]:
    return {"id": article_id, "state": "none", "v": 0}


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
                doc.update(
                    state="published",
                    title=indexed(ev.title),
                    content=indexed(ev.content),
                    tags=ev.tags,
                    tag_keys=[tag_key(t) for t in ev.tags],
                )
                # The first publish dates the article; a re-publish keeps its date.
                doc.setdefault("published_at", rec.envelope.occurred_at.isoformat())
            else:
                doc["state"] = "withdrawn" if isinstance(ev, ArticleWithdrawn) else "deleted"
                for name in _TEXT:
                    doc.pop(name, None)
    return doc


def _article_part(records: Sequence[Recorded]) -> dict[str, Any] | None:
    """The article part the newest of ``records`` leaves (each article event carries the
    whole published state), with the time of the first publish among them (which dates a
    document that has none yet)."""
    newest: ArticleEvent | None = None
    first: tuple[int, str] | None = None
    for rec in records:
        ev = rec.event
        if not isinstance(ev, _ARTICLE_EVENTS):
            continue
        if newest is None or ev.version > newest.version:
            newest = ev
        if isinstance(ev, ArticlePublished) and (first is None or ev.version < first[0]):
            first = (ev.version, rec.envelope.occurred_at.isoformat())
    if newest is None:
        return None
    part: dict[str, Any] = {"v": newest.version, "published_at": first[1] if first else None}
    if isinstance(newest, ArticlePublished):
        part.update(state="published", title=indexed(newest.title), content=indexed(newest.content))
        part["tags"] = newest.tags
        # Each tag as the read model keys it (``tag_key``): what the tag filter matches.
        part["tag_keys"] = [tag_key(t) for t in newest.tags]
    else:
        part["state"] = "withdrawn" if isinstance(newest, ArticleWithdrawn) else "deleted"
    return part


def article_update(article_id: str, records: Sequence[Recorded]) -> dict[str, Any]:
    """The parameters of ARTICLE_SCRIPT for ``records`` of one article."""
    author = next(r.event.author_id for r in records if isinstance(r.event, _ARTICLE_EVENTS))
    return {"id": article_id, "author_id": author, "article": _article_part(records)}


class ArticleSearchProjector(SearchProjector):
    name = ARTICLES
    families: tuple[Family, ...] = (Family.ARTICLES,)

    def index_body(self) -> dict[str, Any]:
        return ARTICLES_BODY

    def added_properties(self) -> dict[str, Any]:
        return ARTICLE_PROPERTIES_ADDED

    def doc_id(self, record: Recorded) -> str | None:
        ev = record.event
        if isinstance(ev, _ARTICLE_EVENTS):
            return ev.article_id
        return None

    def passes_over(self, model: type[Event]) -> bool:
        return not issubclass(model, _ARTICLE_EVENTS)

    def fold(
        self, doc_id: str, current: dict[str, Any] | None, records: list[Recorded]
    ) -> dict[str, Any] | None:
        before = current or empty_article(doc_id)
        after = fold_article(before, records)
        return None if after == before else after

    async def write(self, records: Sequence[Recorded]) -> None:
        grouped = self.by_document(records)
        updates = {doc_id: article_update(doc_id, recs) for doc_id, recs in grouped.items()}
        await self.scripted(ARTICLE_SCRIPT, updates)
