"""Queries over the notifications read model (active generation): a user's page, newest
first by keyset, and their unread count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Select, desc, func, literal, select, true, tuple_, union_all
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import read_all
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import notifications, removed_notifications
from bloghub.api.article_queries import Page
from bloghub.api.consistency import Generations

n = notifications.c


class NotificationQueries:
    projector = "notifications"

    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._engine = engine
        self._generations = generations

    async def page(
        self, user_id: str, *, unread: bool, limit: int, cursor: str | None
    ) -> tuple[Page, int]:
        """A page of the user's notifications and their unread count, from one statement
        (one snapshot): read apart, a notification the projector added between the two
        was counted and not listed, a badge of 23 over a list of 21. The count is the
        statement's one row that is always there, the page joined to it (an empty page is
        that row alone)."""
        count = (
            select(func.count().label("unread_count"))
            .select_from(notifications)
            .where(n.user_id == user_id, ~n.read)
            .subquery()
        )
        listed = select(notifications).where(n.user_id == user_id)
        if unread:
            listed = listed.where(~n.read)
        if cursor is not None:
            listed = listed.where(tuple_(n.created_at, n.id) < _after(cursor))
        page = listed.order_by(desc(n.created_at), desc(n.id)).limit(limit + 1).subquery()
        stmt = (
            select(count.c.unread_count, *page.c)
            .select_from(count.outerjoin(page, true()))
            .order_by(desc(page.c.created_at), desc(page.c.id))
        )
        rows = await self._all(stmt)
        total = int(rows[0].unread_count)
        rows = [r for r in rows if r.id is not None]
        more, rows = len(rows) > limit, rows[:limit]
        if not more or not rows:
            return Page(rows, None), total
        return Page(rows, cursor_of(rows[-1].created_at, str(rows[-1].id))), total

    async def unread(self, user_id: str) -> int:
        stmt = select(func.count()).select_from(notifications).where(n.user_id == user_id, ~n.read)
        rows = await self._all(stmt)
        return int(rows[0][0])

    async def position_of(self, user_id: str, notification_id: str) -> tuple[datetime, str] | None:
        """Where the user's notification sits, or sat, in their list: one removed with its
        comment or article may still be on a client's page, marked read "up to" (None if
        they never had such)."""
        r = removed_notifications.c
        stmt = union_all(
            select(n.created_at, n.id).where(n.user_id == user_id, n.id == notification_id),
            select(r.created_at, r.id).where(r.user_id == user_id, r.id == notification_id),
        )
        rows = await self._all(select(stmt.subquery()).limit(1))
        return (rows[0].created_at, str(rows[0].id)) if rows else None

    async def mine(self, user_id: str, ids: list[str]) -> list[str]:
        """Which of ``ids`` are the user's notifications."""
        if not ids:
            return []
        stmt = select(n.id).where(n.user_id == user_id, n.id.in_(ids))
        return [str(r.id) for r in await self._all(stmt)]

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        schema = schema_name(self.projector, await self._generations.generation(self.projector))
        engine = await self._generations.engine(self.projector, self._engine)
        return await read_all(engine, stmt, {None: schema})


# Microseconds since the epoch and the id in hex: every string of this form is a position
# (up to the year 2286), so the query's pattern alone decides what a cursor may be.
CURSOR_PATTERN = r"^[0-9]{1,16}_[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_of(created_at: datetime, notification_id: str) -> str:
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{UUID(notification_id).hex}"


def _after(cursor: str) -> Any:
    micros, _, hexid = cursor.partition("_")
    when = _EPOCH + timedelta(microseconds=int(micros))
    after = str(UUID(hex=hexid))
    return tuple_(literal(when, DateTime(timezone=True)), literal(after, PgUUID(as_uuid=False)))
