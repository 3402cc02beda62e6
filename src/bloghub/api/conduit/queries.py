"""RealWorld's reads over the same read models as the native API: articles by slug, pages
by offset with their total, the feed, favorites, comments in one flat list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    MetaData,
    Select,
    any_,
    bindparam,
    cast,
    desc,
    exists,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import read_all
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import (
    article_stats,
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
from bloghub.api.v1.path_ids import canonical_id
from bloghub.commands.slugs import SLUG
from bloghub.readmodels import PUBLISHED_UPDATED_AT, tag_key

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
    PUBLISHED_UPDATED_AT,
)

Reader = Callable[[Select[Any]], Awaitable[list[Any]]]

# The likes table under a schema of its own name, so that one statement reads it beside the
# articles read model: the name maps to the interactions generation the request reads.
LIKES_SCHEMA = "interactions"
likes_beside = likes.to_metadata(MetaData(), schema=LIKES_SCHEMA)


@dataclass(frozen=True, slots=True)
class Filters:
    tag: str | None = None
    author_id: str | None = None
    liked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    total: int


@dataclass(frozen=True, slots=True)
class Favorite:
    """Whether a user likes an article, and how many do: one reading of both."""

    liked: bool
    count: int


@dataclass(frozen=True, slots=True)
class Together:
    """The articles and the interactions read models in one store: a statement over both."""

    engine: AsyncEngine
    schemas: dict[str | None, str]

    async def all(self, stmt: Select[Any]) -> list[Any]:
        return await read_all(self.engine, stmt, self.schemas)


class ConduitQueries:
    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._engine = engine
        self._generations = generations
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
        # Only a UUID in hex, as path ids are read: ``UUID()`` also takes braces and a
        # ``urn:uuid:`` prefix, which PostgreSQL refuses as a uuid.
        old_id = canonical_id(slug)
        if row is None and old_id is not None:
            row = await self._articles.first(
                select(*ARTICLE_COLUMNS).where(a.id == old_id, a.slug.is_(None))
            )
        return row

    async def by_id(self, article_id: str) -> Any:
        """The article with this id, in any state (a change decided again after another
        request of the author's moved its slug finds it so)."""
        return await self._articles.first(select(*ARTICLE_COLUMNS).where(a.id == article_id))

    async def published(self, filters: Filters, offset: int, limit: int) -> Page:
        """Published articles, newest first (ties by id), with how many match in all."""
        where = [a.status == "published"]
        if filters.author_id is not None:
            where.append(a.author_id == filters.author_id)
        if filters.tag is not None:
            key = tag_key(filters.tag)
            tagged = select(article_tags.c.article_id).where(article_tags.c.tag == key)
            where.append(a.id.in_(tagged))
        read: Reader = self._articles.all
        if filters.liked_by is not None:
            liked, read = await self._liked_by(filters.liked_by)
            where.append(liked)
        stmt = select(*ARTICLE_COLUMNS).where(*where)
        rows = await read(
            stmt.order_by(desc(a.published_at), desc(a.id)).offset(offset).limit(limit)
        )
        return Page(rows, await self._count(read, select(func.count()).where(*where)))

    async def feed(self, reader_id: str, offset: int, limit: int) -> tuple[list[str], int]:
        """The ids of a page of the reader's feed (the /v1 feed's data), and its total, from
        one snapshot: counted apart, a change applied between the two reads made the total
        disagree with the page."""
        fa, f = feed_articles.c, follows.c
        where = [f.follower_id == reader_id, fa.visible]
        joined = feed_articles.join(follows, fa.author_id == f.followee_id)
        stmt = (
            # The window counts every row the filter keeps, before the page is cut.
            select(fa.article_id, func.count().over().label("total"))
            .select_from(joined)
            .where(*where)
            .order_by(desc(fa.published_at), desc(fa.article_id))
            .offset(offset)
            .limit(limit)
        )
        rows = await self._social.all(stmt)
        if rows:
            return [str(row.article_id) for row in rows], int(rows[0].total)
        # A page past the end has no row to carry the total.
        counted = select(func.count()).select_from(joined).where(*where)
        return [], await self._count(self._social.all, counted)

    async def published_by_id(self, ids: list[str]) -> dict[str, Any]:
        if not ids:
            return {}
        stmt = select(*ARTICLE_COLUMNS).where(a.id == any_(_uuids(ids)), a.status == "published")
        return {str(row.id): row for row in await self._articles.all(stmt)}

    async def favorite(self, user_id: str, article_id: str) -> Favorite:
        """One statement, so one snapshot: a like applied between two reads would be
        counted while the caller's own mark still said "not yet"."""
        lk, st = likes.c, article_stats.c
        liked = exists().where(lk.user_id == user_id, lk.article_id == article_id)
        count = select(st.like_cnt).where(st.article_id == article_id).scalar_subquery()
        row = await self._interactions.first(select(liked.label("liked"), count.label("cnt")))
        return Favorite(bool(row.liked), int(row.cnt or 0))

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

    async def _liked_by(self, user_id: str) -> tuple[ColumnElement[bool], Reader]:
        """Which articles ``user_id`` likes, and how to read the statement that asks. A
        user may like any number of articles: the likes stay in SQL where they can (one
        statement over both read models), and travel as one array parameter where they
        cannot (a migration moved one of the two to another database)."""
        together = await self._together()
        liker = likes_beside.c
        if together is not None:
            return a.id.in_(select(liker.article_id).where(liker.user_id == user_id)), together.all
        stmt = select(likes.c.article_id).where(likes.c.user_id == user_id)
        ids = [str(row.article_id) for row in await self._interactions.all(stmt)]
        return a.id == any_(_uuids(ids)), self._articles.all

    async def _together(self) -> Together | None:
        """Where one statement reads the articles and the likes (None: apart)."""
        engine = await self._generations.engine("articles", self._engine)
        if engine is not await self._generations.engine("interactions", self._engine):
            return None
        articles_at = await self._generations.generation("articles")
        interactions_at = await self._generations.generation("interactions")
        return Together(
            engine,
            {
                None: schema_name("articles", articles_at),
                LIKES_SCHEMA: schema_name("interactions", interactions_at),
            },
        )

    @staticmethod
    async def _count(read: Reader, stmt: Select[Any]) -> int:
        rows = await read(stmt)
        return int(rows[0][0]) if rows else 0


def _uuids(ids: Sequence[str]) -> Any:
    """Ids bound as one array: asyncpg takes at most 32767 parameters a statement."""
    return bindparam(None, list(ids), type_=ARRAY(PG_UUID(as_uuid=False)))
