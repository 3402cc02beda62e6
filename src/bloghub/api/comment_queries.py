"""Queries over the comments read model: one comment, a page of threads, a thread's rest."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import asc, desc, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.tables import comment_counts, comments
from bloghub.api.article_queries import Page, _uuid, decode_cursor, encode_cursor
from bloghub.api.consistency import Generations
from bloghub.api.read_models import ReadModel
from bloghub.commands.comments import CommentRef

c = comments.c
NEWEST_REPLIES = 3  # shown under each top-level comment


class CommentQueries:
    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._model = ReadModel("comments", engine, generations)

    async def ref(self, comment_id: str) -> CommentRef | None:
        row = await self._model.first(
            select(c.id, c.article_id, c.article_author_id, c.author_id, c.root_id).where(
                c.id == comment_id
            )
        )
        if row is None:
            return None
        root = None if row.root_id is None else str(row.root_id)
        return CommentRef(
            str(row.id), str(row.article_id), str(row.article_author_id), str(row.author_id), root
        )

    async def ancestors(self, comment_id: str) -> list[str]:
        """The comments above ``comment_id`` in its thread, its parent first: deleting any
        of them takes it with it."""
        up = select(c.parent_id).where(c.id == comment_id).cte("up", recursive=True)
        up = up.union_all(select(c.parent_id).where(c.id == up.c.parent_id))
        rows = await self._model.all(select(up.c.parent_id).where(up.c.parent_id.is_not(None)))
        return [str(row[0]) for row in rows]

    async def roots(self, article_id: str, limit: int, before: str | None) -> Page:
        """Top-level comments newest first (ids are time-ordered)."""
        stmt = select(comments).where(c.article_id == article_id, c.root_id.is_(None))
        if before is not None:
            (last,) = decode_cursor(before, 1)
            stmt = stmt.where(c.id < _uuid(last, "before"))
        return await self._page(stmt.order_by(desc(c.id)), limit)

    async def replies(self, root_id: str, limit: int, after: str | None) -> Page:
        """The replies of a thread, oldest first."""
        stmt = select(comments).where(c.root_id == root_id)
        if after is not None:
            (last,) = decode_cursor(after, 1)
            stmt = stmt.where(c.id > _uuid(last, "after"))
        return await self._page(stmt.order_by(asc(c.id)), limit)

    async def newest_replies(self, root_ids: list[str]) -> dict[str, list[Any]]:
        """The newest replies of each thread (oldest of them first), in one query: per
        thread an index walk of a few rows, however long the thread."""
        if not root_ids:
            return {}
        root = comments.alias("root")
        newest = (
            select(comments)
            .where(c.root_id == root.c.id)
            .order_by(desc(c.id))
            .limit(NEWEST_REPLIES)
            .lateral("newest")
        )
        stmt = (
            select(newest)
            .select_from(root.join(newest, true()))
            .where(root.c.id.in_(root_ids))
            .order_by(asc(newest.c.id))
        )
        out: dict[str, list[Any]] = defaultdict(list)
        for row in await self._model.all(stmt):
            out[str(row.root_id)].append(row)
        return out

    async def counts(self, article_ids: list[str]) -> dict[str, int]:
        n = comment_counts.c
        stmt = select(n.article_id, n.comments).where(n.article_id.in_(article_ids))
        return {str(r.article_id): int(r.comments) for r in await self._model.all(stmt)}

    async def _page(self, stmt: Any, limit: int) -> Page:
        rows = await self._model.all(stmt.limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(str(rows[-1].id)) if more else None)
