"""Generation-aware read-model schemas: ``<projector>_g<N>``, one active per projector."""

from __future__ import annotations

import re

from sqlalchemy import MetaData, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import READ_MODELS, generations

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def schema_name(projector: str, generation: int) -> str:
    if not _NAME.match(projector) or generation < 1:
        raise ValueError(f"bad projector/generation: {projector!r} {generation}")
    return f"{projector}_g{generation}"


def read_model_in(projector: str, schema: str) -> MetaData:
    """A copy of the projector's read-model tables placed in ``schema``."""
    copy = MetaData()
    source = READ_MODELS.get(projector)
    for table in source.sorted_tables if source is not None else ():
        table.to_metadata(copy, schema=schema)
    return copy


async def create_generation(
    conn: AsyncConnection, projector: str, generation: int, *, activate: bool
) -> str:
    """Create the schema and tables of a generation (idempotent)."""
    schema = schema_name(projector, generation)
    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    await conn.run_sync(read_model_in(projector, schema).create_all, checkfirst=True)
    state = "active" if activate else "building"
    await conn.execute(
        insert(generations)
        .values(projector=projector, generation=generation, state=state)
        .on_conflict_do_nothing()
    )
    if activate:
        await activate_generation(conn, projector, generation)
    return schema


async def activate_generation(conn: AsyncConnection, projector: str, generation: int) -> None:
    """Switch reads to ``generation`` in one statement: the previous one retires."""
    await conn.execute(
        update(generations)
        .where(generations.c.projector == projector)
        .values(
            state=text(
                "CASE WHEN generation = :g THEN 'active' "
                "WHEN state = 'active' THEN 'retired' ELSE state END"
            ).bindparams(g=generation),
            activated_at=text(
                "CASE WHEN generation = :g2 THEN now() ELSE activated_at END"
            ).bindparams(g2=generation),
        )
    )


async def active_generations(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(generations.c.projector, generations.c.generation).where(
            generations.c.state == "active"
        )
    )
    return {r.projector: r.generation for r in rows}
