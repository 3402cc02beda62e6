"""Queries over the read models, always against the projector's active generation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import users
from bloghub.api.consistency import Progress


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str
    password_hash: str
    created_at: datetime


class UserQueries:
    projector = "users"

    def __init__(self, engine: AsyncEngine, progress: Progress) -> None:
        self._engine = engine
        self._progress = progress

    async def by_email(self, email: str) -> UserRow | None:
        return await self._one(users.c.email == email)

    async def by_id(self, user_id: str) -> UserRow | None:
        return await self._one(users.c.id == user_id)

    async def _one(self, where: object) -> UserRow | None:
        schema = schema_name(self.projector, await self._progress.generation(self.projector))
        stmt = select(users.c.id, users.c.email, users.c.password_hash, users.c.created_at).where(
            where  # type: ignore[arg-type]
        )
        async with translated(), self._engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: schema})
            row = (await conn.execute(stmt)).one_or_none()
        return (
            None
            if row is None
            else UserRow(str(row.id), row.email, row.password_hash, row.created_at)
        )
