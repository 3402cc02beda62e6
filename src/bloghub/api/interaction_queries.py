"""Queries over the interactions read model (active generation): counts, the caller's
likes and collections, and a collection's articles with keyset pagination."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, any_, bindparam, desc, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import read_all
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.adapters.postgres.tables import article_stats, collection_items, collections, likes
from bloghub.adapters.redis.counters import Counts, Tally
from bloghub.api.article_queries import Page, _time, _uuid, decode_cursor, encode_cursor
from bloghub.api.consistency import Generations
from bloghub.commands.interactions import Box, Target

s = article_stats.c
i = collection_items.c
# A user's collections are listed whole, so they are bounded: creating one past this is 422.
MAX_COLLECTIONS = 1000


@dataclass(frozen=True, slots=True)
class Mine:
    """What the caller did to each of some articles."""

    liked: set[str]
    collected: set[str]


# What a like or a collect decides on, asked once per command: through the kept asyncpg
# pool (prepared per connection, no transaction, the likes waiting at once asked together)
# rather than the engine, whose pre-ping, transaction and overflow connections (opened and
# closed under a burst of likes) cost more than the read itself. ``{schema}`` is the
# active generation's (a checked name).
TARGET_SQL = (
    "SELECT article_id::text, author_id::text, visible "
    'FROM "{schema}".article_stats WHERE article_id = ANY($1::uuid[])'
)


def _ids(article_ids: Iterable[str]) -> Any:
    return bindparam("ids", sorted(set(article_ids)), type_=ARRAY(UUID(as_uuid=False)))


class InteractionQueries:
    projector = "interactions"

    def __init__(
        self, engine: AsyncEngine, generations: Generations, lookups: Lookups | None = None
    ) -> None:
        self._engine = engine
        self._generations = generations
        self._lookups = lookups

    async def target(self, article_id: str) -> Target | None:
        # The kept pool is the main database's: once a migration moves this read model's
        # reads elsewhere, a like decides on the store the reads come from.
        moved = await self._generations.engine(self.projector, self._engine) is not self._engine
        if self._lookups is not None and not moved:
            schema = await self._schema()
            row = await self._lookups.one_of(TARGET_SQL.format(schema=schema), article_id)
            return None if row is None else Target(row[0], row[1], row[2])
        rows = await self._all(
            select(s.article_id, s.author_id, s.visible).where(s.article_id == article_id)
        )
        return (
            Target(str(rows[0].article_id), str(rows[0].author_id), rows[0].visible)
            if rows
            else None
        )

    async def tallies(self, article_ids: Sequence[str]) -> dict[str, Tally]:
        if not article_ids:
            return {}
        rows = await self._all(
            select(s.article_id, s.author_id, s.read_cnt, s.like_cnt, s.collect_cnt).where(
                s.article_id == any_(_ids(article_ids))
            )
        )
        return {
            str(r.article_id): Tally(
                Counts(r.read_cnt, r.like_cnt, r.collect_cnt), str(r.author_id)
            )
            for r in rows
        }

    async def mine(self, user_id: str, article_ids: Sequence[str]) -> Mine:
        """Which of ``article_ids`` the user likes, and has in any collection: one query."""
        if not article_ids:
            return Mine(set(), set())
        liked = select(likes.c.article_id, literal("like").label("kind")).where(
            likes.c.user_id == user_id, likes.c.article_id == any_(_ids(article_ids))
        )
        kept = (
            select(i.article_id, literal("collect").label("kind"))
            .where(i.user_id == user_id, i.article_id == any_(_ids(article_ids)))
            .distinct()
        )
        rows = await self._all(liked.union_all(kept))  # type: ignore[arg-type]
        return Mine(
            {str(r.article_id) for r in rows if r.kind == "like"},
            {str(r.article_id) for r in rows if r.kind == "collect"},
        )

    async def kept_elsewhere(self, user_id: str, article_id: str, collection_id: str) -> bool:
        """Whether the user has the article in a collection other than ``collection_id``."""
        stmt = select(i.collection_id).where(
            i.user_id == user_id, i.article_id == article_id, i.collection_id != collection_id
        )
        return bool(await self._all(stmt.limit(1)))

    async def box(self, collection_id: str) -> Box | None:
        c = collections.c
        rows = await self._all(select(c.id, c.owner_id, c.name).where(c.id == collection_id))
        return Box(str(rows[0].id), str(rows[0].owner_id), rows[0].name) if rows else None

    async def box_count(self, owner_id: str) -> int:
        c = collections.c
        rows = await self._all(select(func.count()).where(c.owner_id == owner_id))
        return int(rows[0][0])

    async def boxes(self, owner_id: str) -> list[Any]:
        """The user's collections, oldest first, each with how many articles it shows (one
        withdrawn or deleted since is hidden, as everywhere, and not counted). All of them:
        creates sent at once may pass ``MAX_COLLECTIONS`` (each counts those made before
        it), and a collection whose id its creator was given is never left out."""
        c = collections.c
        held = (
            select(func.count())
            .select_from(collection_items.join(article_stats, s.article_id == i.article_id))
            .where(i.collection_id == c.id, s.visible)
            .scalar_subquery()
        )
        return await self._all(
            select(c.id, c.name, c.created_at, held.label("articles"))
            .where(c.owner_id == owner_id)
            .order_by(c.created_at, c.id)
        )

    async def entries(self, collection_id: str, limit: int, cursor: str | None) -> Page:
        """A collection's articles, newest first; one withdrawn or deleted since is hidden
        (its entry is kept: a republished article shows again, its counts frozen meanwhile)."""
        stmt = (
            select(i.article_id, i.added_at)
            .join(article_stats, s.article_id == i.article_id)
            .where(i.collection_id == collection_id, s.visible)
        )
        if cursor is not None:
            at, after = decode_cursor(cursor, 2)
            stmt = stmt.where(tuple_(i.added_at, i.article_id) < (_time(at), _uuid(after)))
        rows = await self._all(stmt.order_by(desc(i.added_at), desc(i.article_id)).limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = (
            encode_cursor(rows[-1].added_at.isoformat(), str(rows[-1].article_id)) if more else None
        )
        return Page(rows, nxt)

    async def _schema(self) -> str:
        return schema_name(self.projector, await self._generations.generation(self.projector))

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        schema = await self._schema()
        engine = await self._generations.engine(self.projector, self._engine)
        return await read_all(engine, stmt, {None: schema})
