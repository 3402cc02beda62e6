"""Through the real driver and server: a statement the driver refuses to send (more
arguments than the protocol takes) is this code's error, raised as it is; a connection the
server ended is still a store that is unwell for a moment."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc, select, text

from bloghub.adapters.postgres.engine import make_engine, translated
from bloghub.adapters.postgres.tables import generations
from bloghub.errors import Transient
from bloghub.settings import Settings

TOO_MANY = 32768  # asyncpg sends at most 32767 arguments with a statement


async def test_too_many_arguments_is_the_codes_error_not_an_unwell_store(
    settings: Settings,
) -> None:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    g = generations.c
    stmt = select(g.projector).where(g.generation.in_(list(range(TOO_MANY))))
    try:
        with pytest.raises(exc.InterfaceError) as raised:
            async with translated(), engine.connect() as conn:
                await conn.execute(stmt)
        wrapped = raised.value.orig
        assert wrapped is not None
        assert isinstance(wrapped.__cause__, asyncpg.InterfaceError)
        assert "32767" in str(raised.value)
        # The connection was never broken: the next statement on the pool goes through.
        async with translated(), engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_connection_the_server_ended_is_transient(settings: Settings) -> None:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    admin = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(Transient):
                async with translated():
                    await conn.execute(text("SELECT 1"))
    finally:
        await admin.close()
        await engine.dispose()
