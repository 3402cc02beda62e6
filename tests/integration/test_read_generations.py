"""A request waits on and reads one generation of each read model, even when a rebuilt
generation is switched in while it runs."""

from __future__ import annotations

import secrets

from sqlalchemy import delete, text

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import create_generation
from bloghub.adapters.postgres.tables import generations
from bloghub.api.consistency import Pinned, Progress
from bloghub.settings import Settings


async def test_a_request_keeps_the_generation_it_resolved_first(settings: Settings) -> None:
    name = f"pin_{secrets.token_hex(3)}"  # a projector of its own: no other test sees it
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    progress = Progress(engine, prefix=settings.prefix, generations_ttl_s=0)
    try:
        async with engine.begin() as conn:
            await create_generation(conn, name, 1, activate=True)
        request = Pinned(progress)
        assert await request.generation(name) == 1  # what it waits on...
        async with engine.begin() as conn:  # a rebuild finishes and reads switch
            await create_generation(conn, name, 2, activate=True)
        assert await request.generation(name) == 1  # ...is what it reads
        assert await Pinned(progress).generation(name) == 2  # the next request reads anew
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(generations).where(generations.c.projector == name))
            for gen in (1, 2):
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}_g{gen}" CASCADE'))
        await engine.dispose()
