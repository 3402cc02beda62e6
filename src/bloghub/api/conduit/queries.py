"""RealWorld's reads over the same read models as the native API: articles by slug, pages
by offset with their total, the feed, favorites, comments in one flat list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Select, cast, desc, func, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.tables import (
    article_tags,
    articles,
    comments,
    feed_articles,
    follows,
    likes,
    reservations,
)
from bloghub.api.consistency import Generations
from bloghub.api.read_models import ReadModel
from bloghub.commands.slugs import SLUG

a, r = articles.c, reservations.c
ARTICLE_COLUMNS = (
    a.id,
    a.author_id,
    a.version,
    a.status,
    a.slug,
    a.published_title,
    a.published_description,
    a.published_content,
    a.published_tags,
    a.published_at,
    a.updated_at,
)


@dataclass(frozen=True, slots=True)
class Filters:
    tag: str | None = None
    author_id: str | None = None
    liked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    total: int


class ConduitQueries:
    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._articles = ReadModel("articles", engine, generations)
        self._social = ReadModel("social", engine, generations)
        self._interactions = ReadModel("interactions", engine, generations)
        self._comments = ReadModel("comments", engine, generations)

    async def by_slug(self, slug: str) -> Any:
        """The article ``slug`` names, in any state. The write-side index says which
        article holds a slug (two rows may name it while a rename and the slug's next
        owner apply in either order). An article from before slugs goes by its id."""
        holder = select(r.owner_id).where(r.kind == SLUG, r.value == slug).scalar_subquery()
        held = a.id == cast(holder, PG_UUID(as_uuid=False))
        row = await self._articles.first(select(*ARTICLE_COLUMNS).where(held, a.slug == slug))
        if row is None and _is_uuid(slug):
            row = await self._articles.first(
                select(*ARTICLE_COLUMNS).where(a.id == slug, a.slug.is_(None))
            )
        return row

    async def published(self, filters: Filters, offset: int, limit: int) -> Page:
        """Published articles, newest first (ties by id), with how many match in all."""
        where = [a.status == "published"]
        if filters.author_id is not None:
            where.append(a.author_id == filters.author_id)
        if filters.tag is not None:
            tagged = select(article_tags.c.article_id).where(article_tags.c.tag == filters.tag)
            where.append(a.id.in_(tagged))
        if filters.liked_by is not None:
            liked = await self._liked_by(filters.liked_by)
            if not liked:
                return Page([], 0)
            where.append(a.id.in_(liked))
        stmt = select(*ARTICLE_COLUMNS).where(*where)
        rows = await self._articles.all(
            stmt.order_by(desc(a.published_at), desc(a.id)).offset(offset).limit(limit)
        )
        return Page(rows, await self._count(self._articles, select(func.count()).where(*where)))

    async def feed(self, reader_id: str, offset: int, limit: int) -> tuple[list[str], int]:
        """The ids of a page of the reader's feed (the /v1 feed's data), and its total."""
        fa, f = feed_articles.c, follows.c
        where = [f.follower_id == reader_id, fa.visible]
        joined = feed_articles.join(follows, fa.author_id == f.followee_id)
        stmt = (
            select(fa.article_id)
            .select_from(joined)
            .where(*where)
            .order_by(desc(fa.published_at), desc(fa.article_id))
            .offset(offset)
            .limit(limit)
        )
        ids = [str(row.article_id) for row in await self._social.all(stmt)]
        counted = select(func.count()).select_from(joined).where(*where)
        total = await self._count(self._social, counted)
        return ids, total

    async def published_by_id(self, ids: list[str]) -> dict[str, Any]:
        if not ids:
            return {}
        stmt = select(*ARTICLE_COLUMNS).where(a.id.in_(ids), a.status == "published")
        return {str(row.id): row for row in await self._articles.all(stmt)}

    async def comments(self, article_id: str) -> list[Any]:
        """Every comment under the article, replies among them, newest first (ids are
        time-ordered, so they break ties of time)."""
        c = comments.c
        stmt = (
            select(c.id, c.number, c.author_id, c.content, c.created_at)
            .where(c.article_id == article_id)
            .order_by(desc(c.created_at), desc(c.id))
        )
        return await self._comments.all(stmt)

    async def comment_numbered(self, article_id: str, number: int) -> str | None:
        """The id of the article's comment with public number ``number``."""
        c = comments.c
        stmt = select(c.id).where(c.article_id == article_id, c.number == number)
        row = await self._comments.first(stmt)
        return None if row is None else str(row.id)

    async def _liked_by(self, user_id: str) -> list[str]:
        stmt = select(likes.c.article_id).where(likes.c.user_id == user_id)
        return [str(row.article_id) for row in await self._interactions.all(stmt)]

    @staticmethod
    async def _count(model: ReadModel, stmt: Select[Any]) -> int:
        row = await model.first(stmt)
        return int(row[0]) if row is not None else 0


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True
