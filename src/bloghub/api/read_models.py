"""Running a query against the active generation of one projector's read model, as the
request pinned it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated
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
        async with translated(), engine.connect() as raw:
            conn = await raw.execution_options(
                schema_translate_map={None: schema_name(self.projector, generation)}
            )
            return list(await conn.execute(stmt))

    async def first(self, stmt: Select[Any]) -> Any:
        rows = await self.all(stmt.limit(1))
        return rows[0] if rows else None
