"""The API's reads of its read models (``make_read_engine``, ``read_all``): one statement is
one round trip to the server, with no transaction or ping around it, and a connection the
server has ended since it was pooled costs a retry, never the reader's answer."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Select, column, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine, make_read_engine, read_all
from bloghub.settings import Settings
from tests.conftest import pg


@pytest.fixture
async def reads(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, str]]:
    app = f"test-reads-{secrets.token_hex(4)}"
    engine = make_read_engine(settings.sqlalchemy_url, pool_size=2, app=app, statement_timeout_s=10)
    yield engine, app
    await engine.dispose()


async def _sent_around(engine: AsyncEngine) -> list[str]:
    """What a read on ``engine``'s one pooled connection sends the server besides its
    statement: the driver logs every query but a prepared statement's execution."""
    stmt: Select[Any] = select(column("n")).select_from(text("(VALUES (1), (2)) AS t(n)"))
    assert [r.n for r in await read_all(engine, stmt)] == [1, 2]  # the pool has one now
    sent: list[str] = []
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert isinstance(raw, asyncpg.Connection)
        raw.add_query_logger(lambda record: sent.append(record.query.strip().upper()))
    sent.clear()  # what that checkout and return sent
    assert [r.n for r in await read_all(engine, stmt)] == [1, 2]
    return sent


async def test_a_read_sends_the_server_its_statement_and_nothing_else(
    settings: Settings, reads: tuple[AsyncEngine, str]
) -> None:
    engine, _ = reads
    assert await _sent_around(engine) == []
    # An engine of the usual kind, pinged and transactional, for comparison: a BEGIN, the
    # ping and a ROLLBACK before the statement, a BEGIN before it and a ROLLBACK after.
    usual = make_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        around = await _sent_around(usual)
    finally:
        await usual.dispose()
    assert around.count(";") == 1, around
    assert around.count("ROLLBACK;") == 2, around
    assert sum(q.startswith("BEGIN") for q in around) == 2, around


async def test_a_read_after_the_server_ended_every_session_is_answered(
    settings: Settings, reads: tuple[AsyncEngine, str]
) -> None:
    engine, app = reads
    stmt: Select[Any] = select(column("n")).select_from(text("(VALUES (7)) AS t(n)"))
    assert [r.n for r in await read_all(engine, stmt)] == [7]
    async with pg(settings) as admin:
        ended = await admin.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            app,
        )
    assert ended >= 1, "the read's connection is kept in the pool between reads"
    # The pooled connection is gone: the read is tried again on a fresh one.
    assert [r.n for r in await read_all(engine, stmt)] == [7]
