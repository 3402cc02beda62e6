"""Running a query against the active generation of one projector's read model, as the
request pinned it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import read_all
from bloghub.adapters.postgres.generations import schema_name
from bloghub.api.consistency import Generations


class ReadModel:
    def __init__(self, projector: str, engine: AsyncEngine, generations: Generations) -> None:
        self.projector = projector
        self._engine = engine
        self._generations = generations

    async def all(self, stmt: Select[Any]) -> list[Any]:
        generation = await self._generations.generation(self.projector)
        engine = await self._generations.engine(self.projector, self._engine)
        return await read_all(engine, stmt, {None: schema_name(self.projector, generation)})

    async def first(self, stmt: Select[Any]) -> Any:
        rows = await self.all(stmt.limit(1))
        return rows[0] if rows else None
