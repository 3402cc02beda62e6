"""The articles projector: drafts, published versions and tags, and the caches it owns
(the author's first page, draft details, published details)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import article_tags, articles
from bloghub.adapters.redis.cache import Cache
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleDrafted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
    DraftEdited,
)
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.projections.tag_counts import TagTally, write_tally
from bloghub.readmodels import (
    PUBLISHED_COLUMNS,
    PUBLISHED_TTL_S,
    author_first_page_key,
    draft_key,
    published_key,
    published_view,
    tag_key,
)


class ArticlesProjector(PostgresProjector):
    name = "articles"
    families: tuple[Family, ...] = (Family.ARTICLES,)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        tally = TagTally()
        drafted: list[dict[str, Any]] = []
        for rec in records:
            ev = rec.event
            if type(ev) is ArticleDrafted:
                drafted.append(_draft_row(ev, rec.envelope.occurred_at))
            elif isinstance(ev, ArticleEvent):
                # Drafts so far first: a later event of the same article needs its row.
                await _insert_drafts(conn, drafted)
                await self._apply(conn, ev, rec.envelope.occurred_at, tally)
        await _insert_drafts(conn, drafted)
        # Last, so the shared count rows are held only for the end of the transaction.
        await write_tally(conn, tally)

    async def _apply(
        self, conn: AsyncConnection, ev: ArticleEvent, at: datetime, tally: TagTally
    ) -> None:
        # Each change carries the draft version it leaves; a row already at or past it has
        # seen the change, so a re-delivery changes nothing (``_newer``).
        newer = {"b_id": ev.article_id, "b_version": ev.version, "b_at": at}
        match ev:
            case ArticleDrafted():
                await _insert_drafts(conn, [_draft_row(ev, at)])
            case DraftEdited():
                await conn.execute(
                    _EDITED if ev.slug is None else _EDITED_SLUG,
                    newer | _carried(ev) | {"b_slug": ev.slug},
                )
            case ArticlePublished():
                done = await conn.execute(
                    _PUBLISHED if ev.slug is None else _PUBLISHED_SLUG,
                    newer | _carried(ev) | {"b_slug": ev.slug},
                )
                if done.rowcount:
                    await self._set_tags(conn, ev.article_id, ev.tags, tally)
            case ArticleWithdrawn():
                done = await conn.execute(_WITHDRAWN, newer)
                if done.rowcount:
                    await self._set_tags(conn, ev.article_id, [], tally)
            case ArticleDeleted():
                await conn.execute(_DELETED, {"b_id": ev.article_id})
                await self._set_tags(conn, ev.article_id, [], tally)

    async def _set_tags(
        self, conn: AsyncConnection, article_id: str, tags: list[str], tally: TagTally
    ) -> None:
        # The tags it leaves are read from the rows it deletes: the count moves by what the
        # read model actually changed, so a delete of an unpublished article moves nothing.
        keys = sorted({tag_key(t) for t in tags})
        gone = await conn.execute(_TAGS_GONE, {"b_id": article_id})
        tally.moved(gone.scalars(), keys)
        if keys:
            await conn.execute(_TAGGED, [{"article_id": article_id, "tag": k} for k in keys])

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        cache = self.cache
        stale: set[str] = set()
        if cache is None:
            return stale
        for rec in records:
            ev = rec.event
            if not isinstance(ev, ArticleEvent):
                continue
            stale |= {draft_key(cache, ev.article_id), author_first_page_key(cache, ev.author_id)}
            if not isinstance(ev, DraftEdited | ArticleDrafted):
                stale.add(published_key(cache, ev.article_id))
        return stale

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        # Withdraw and delete take the published version out of every cache in one command.
        await super().after_commit(records)
        cache = self.cache
        if cache is None:
            return
        published = {r.event.article_id for r in records if isinstance(r.event, ArticlePublished)}
        if self.live and published:
            await self._prewarm(cache, published)

    async def _prewarm(self, cache: Cache, ids: set[str]) -> None:
        """Put just-published articles in the cache, as committed (a later withdraw in the
        same batch leaves nothing to put). The cache notes its invalidation counters before
        the rows are read, so an instance that has lost these partitions cannot put back a
        copy that the new owner has invalidated meanwhile."""
        keys = [published_key(cache, i) for i in sorted(ids)]
        await cache.warm(keys, PUBLISHED_TTL_S, lambda: self._published_views(cache, ids))

    async def _published_views(self, cache: Cache, ids: set[str]) -> dict[str, Any]:
        """The cached form of each of ``ids`` that is published, by cache key."""
        stmt = select(*PUBLISHED_COLUMNS).where(articles.c.id.in_(ids))
        async with self.engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: self.schema})
            rows = list(await conn.execute(stmt))
        views = (published_view(row) for row in rows)
        return {published_key(cache, v["id"]): v for v in views if v is not None}


# The statements are built once: made per event, SQLAlchemy's construction of each and of
# its cache key cost more than the database's work (a fifth of the projectors' process
# under a steady stream of drafts). A run of drafts is one executemany.
_DRAFTED = pg_insert(articles).on_conflict_do_nothing(index_elements=["id"])


def _p(name: str) -> BindParameter[Any]:
    return bindparam(f"b_{name}", type_=articles.c[name].type)


_row = articles.c
_SHOWN = ("title", "content", "tags", "description")
_newer = (_row.id == _p("id")) & (_row.version < _p("version"))
_carrying = {
    "version": _p("version"),
    "title": _p("title"),
    "content": _p("content"),
    "tags": _p("tags"),
    "description": _p("description"),
    "updated_at": bindparam("b_at", type_=_row.updated_at.type),
}
_EDITED = update(articles).where(_newer).values(_carrying)
# What readers see changes with a publish only if the published title, content, tags or
# description do: re-publishing a withdrawn article as it was leaves its ``updated_at``.
_SHOWN_CHANGES = or_(
    _row.published_updated_at.is_(None),
    *(_row[f"published_{name}"].is_distinct_from(_p(name)) for name in _SHOWN),
)
_PUBLISHED = (
    update(articles)
    .where(_newer)
    .values(
        {
            "version": _p("version"),
            "status": "published",
            "published_version": _p("version"),
            "published_title": _p("title"),
            "published_content": _p("content"),
            "published_tags": _p("tags"),
            "published_description": _p("description"),
            "updated_at": bindparam("b_at", type_=_row.updated_at.type),
            "published_updated_at": case(
                (_SHOWN_CHANGES, bindparam("b_at", type_=_row.updated_at.type)),
                else_=_row.published_updated_at,
            ),
            "published_at": func.coalesce(
                _row.published_at, bindparam("b_at", type_=_row.published_at.type)
            ),
        }
    )
)
# Events from before slugs leave the column as it is.
_EDITED_SLUG = _EDITED.values(slug=_p("slug"))
_PUBLISHED_SLUG = _PUBLISHED.values(slug=_p("slug"))
_DELETED = delete(articles).where(_row.id == _p("id"))
_TAGS_GONE = (
    delete(article_tags)
    .where(article_tags.c.article_id == bindparam("b_id", type_=article_tags.c.article_id.type))
    .returning(article_tags.c.tag)
)
_TAGGED = insert(article_tags)
_WITHDRAWN = (
    update(articles)
    .where(_newer)
    .values(
        version=_p("version"),
        status="withdrawn",
        updated_at=bindparam("b_at", type_=_row.updated_at.type),
    )
)


def _carried(ev: DraftEdited | ArticlePublished) -> dict[str, Any]:
    return {
        "b_title": ev.title,
        "b_content": ev.content,
        "b_tags": ev.tags,
        "b_description": ev.description,
    }


def _draft_row(ev: ArticleDrafted, at: datetime) -> dict[str, Any]:
    return {
        "id": ev.article_id,
        "author_id": ev.author_id,
        "version": ev.version,
        "status": "draft",
        "title": ev.title,
        "content": ev.content,
        "tags": ev.tags,
        "slug": ev.slug,
        "description": ev.description,
        "created_at": at,
        "updated_at": at,
    }


async def _insert_drafts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert the drafts gathered so far (a re-delivered one changes nothing), and forget
    them."""
    if rows:
        await conn.execute(_DRAFTED, rows)
        rows.clear()
