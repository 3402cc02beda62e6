"""Queries over the social read model: relations, their counts, and the feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, desc, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.tables import feed_articles, follow_counts, follows
from bloghub.api.article_queries import Page, _time, _uuid, decode_cursor, encode_cursor
from bloghub.api.consistency import Generations
from bloghub.api.read_models import ReadModel

f, fa = follows.c, feed_articles.c


class SocialQueries:
    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._model = ReadModel("social", engine, generations)

    async def follows(self, follower_id: str, followee_id: str) -> bool:
        stmt = select(f.followee_id).where(
            f.follower_id == follower_id, f.followee_id == followee_id
        )
        return await self._model.first(stmt) is not None

    async def counts(self, user_id: str) -> tuple[int, int]:
        """(followers, followees) of ``user_id``."""
        c = follow_counts.c
        row = await self._model.first(select(c.followers, c.followees).where(c.user_id == user_id))
        return (0, 0) if row is None else (int(row.followers), int(row.followees))

    async def followers(self, user_id: str, limit: int, cursor: str | None) -> Page:
        """Who follows ``user_id``, newest first: rows of (user_id, followed_at)."""
        return await self._people(f.followee_id, f.follower_id, user_id, limit, cursor)

    async def followees(self, user_id: str, limit: int, cursor: str | None) -> Page:
        """Whom ``user_id`` follows, newest first: rows of (user_id, followed_at)."""
        return await self._people(f.follower_id, f.followee_id, user_id, limit, cursor)

    async def followed_among(self, follower_id: str, user_ids: list[str]) -> set[str]:
        """Which of ``user_ids`` ``follower_id`` follows."""
        if not user_ids:
            return set()
        stmt = select(f.followee_id).where(
            f.follower_id == follower_id, f.followee_id.in_(user_ids)
        )
        return {str(r.followee_id) for r in await self._model.all(stmt)}

    async def feed(self, reader_id: str, limit: int, cursor: str | None) -> Page:
        """Published articles of the people ``reader_id`` follows, newest first: rows of
        (article_id, published_at). Each followee gives at most one page of its newest
        articles (an index walk), and the pages are merged: the cost follows the number
        of followees and the page size, not how much each of them has written."""
        per_author = select(fa.article_id, fa.published_at).where(
            fa.author_id == f.followee_id, fa.visible
        )
        if cursor is not None:
            at, after = decode_cursor(cursor, 2)
            per_author = per_author.where(
                tuple_(fa.published_at, fa.article_id) < (_time(at), _uuid(after))
            )
        newest = (
            per_author.order_by(desc(fa.published_at), desc(fa.article_id))
            .limit(limit + 1)
            .lateral("newest")
        )
        stmt = (
            select(newest.c.article_id, newest.c.published_at)
            .select_from(follows.join(newest, true()))
            .where(f.follower_id == reader_id)
            .order_by(desc(newest.c.published_at), desc(newest.c.article_id))
        )
        return await self._page(stmt, limit, lambda r: (r.published_at, r.article_id))

    async def _people(
        self, by: Any, other: Any, user_id: str, limit: int, cursor: str | None
    ) -> Page:
        stmt = select(other.label("user_id"), f.followed_at).where(by == user_id)
        if cursor is not None:
            at, after = decode_cursor(cursor, 2)
            stmt = stmt.where(tuple_(f.followed_at, other) < (_time(at), _uuid(after)))
        stmt = stmt.order_by(desc(f.followed_at), desc(other))
        return await self._page(stmt, limit, lambda r: (r.followed_at, r.user_id))

    async def _page(self, stmt: Select[Any], limit: int, key: Any) -> Page:
        rows = await self._model.all(stmt.limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        if not more:
            return Page(rows, None)
        at, last = key(rows[-1])
        return Page(rows, encode_cursor(_iso(at), str(last)))


def _iso(at: datetime) -> str:
    return at.isoformat()
