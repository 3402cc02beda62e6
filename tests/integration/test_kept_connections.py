"""The connections the write path's single statements run on (``Lookups``): never more than
their number open, every caller answered, and a connection left mid-exchange (a statement
cancelled or timed out, sessions the server ended) never handed out again."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bloghub.adapters.postgres.kept import Connect, KeptConnections
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.errors import StoreRejected, Unavailable
from bloghub.settings import Settings


@pytest.fixture
def app_name() -> str:
    return f"test-kept-{secrets.token_hex(4)}"


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    yield conn
    await conn.close()


def connector(settings: Settings) -> Connect:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(settings.asyncpg_dsn)

    return connect


async def _only_a_fresh_one(kept: KeptConnections, gone: list[asyncpg.Connection]) -> None:
    """The next checkout opens a new, working connection, the only one kept; ``gone`` are
    closed."""
    fresh = await kept.acquire()
    assert all(conn.is_closed() for conn in gone)
    assert all(fresh is not conn for conn in gone)
    assert await fresh.fetchval("SELECT 1") == 1
    assert kept.count == 1
    kept.release(fresh)


async def _sessions(admin: asyncpg.Connection, app_name: str) -> int:
    count = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_name
    )
    return int(count)


async def test_many_callers_at_once_share_no_more_connections_than_kept(
    settings: Settings, admin: asyncpg.Connection, app_name: str
) -> None:
    lookups = await Lookups.open(settings.asyncpg_dsn, size=3, app=app_name)
    try:
        seen: list[int] = []
        one_at_a_time = asyncio.Lock()  # the admin's connection runs one statement at once

        async def ask(i: int) -> int:
            rows = await lookups.rows("SELECT $1::int + 0, pg_sleep(0.01)", i)
            async with one_at_a_time:
                seen.append(await _sessions(admin, app_name))
            return int(rows[0][0])

        answers = await asyncio.gather(*(ask(i) for i in range(60)))
        assert answers == list(range(60))
        assert max(seen) <= 3
        assert await _sessions(admin, app_name) == 3
    finally:
        await lookups.close()
    for _ in range(50):
        if await _sessions(admin, app_name) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _sessions(admin, app_name) == 0


async def test_a_cancelled_statements_connection_is_not_handed_out_again(
    settings: Settings, admin: asyncpg.Connection, app_name: str
) -> None:
    lookups = await Lookups.open(settings.asyncpg_dsn, size=1, app=app_name)
    try:
        slow = asyncio.ensure_future(lookups.rows("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        # The one place is free again and the next statement gets a sane connection, not
        # one still waiting on the sleep's answer.
        for i in range(5):
            assert (await lookups.rows("SELECT $1::int", i))[0][0] == i
    finally:
        await lookups.close()


async def test_a_statement_past_its_timeout_frees_its_place(
    settings: Settings, app_name: str
) -> None:
    lookups = await Lookups.open(
        settings.asyncpg_dsn, size=1, app=app_name, statement_timeout_s=0.2
    )
    try:
        with pytest.raises(Unavailable):  # a 503 to retry
            await lookups.rows("SELECT pg_sleep(3)")
        assert (await lookups.rows("SELECT 7"))[0][0] == 7
    finally:
        await lookups.close()


async def test_a_server_error_keeps_the_connection_usable(
    settings: Settings, admin: asyncpg.Connection, app_name: str
) -> None:
    lookups = await Lookups.open(settings.asyncpg_dsn, size=1, app=app_name)
    try:
        pid = (await lookups.rows("SELECT pg_backend_pid()"))[0][0]
        with pytest.raises(StoreRejected):
            await lookups.rows("SELECT 1 / $1::int", 0)
        assert (await lookups.rows("SELECT pg_backend_pid()"))[0][0] == pid
    finally:
        await lookups.close()


async def test_a_caller_that_waits_too_long_is_told_and_loses_no_place(
    settings: Settings,
) -> None:
    kept = KeptConnections(connector(settings), size=1, wait_s=0.2)
    try:
        held = await kept.acquire()
        with pytest.raises(TimeoutError):
            await kept.acquire()
        later = asyncio.ensure_future(kept.acquire())
        await asyncio.sleep(0.05)
        kept.release(held)
        got = await later  # handed over to the waiter, not left idle beside it
        assert got is held
        assert kept.count == 1
        kept.release(got)
    finally:
        await kept.close()


async def test_sessions_the_server_ended_are_replaced_lent_ones_when_given_back(
    settings: Settings, admin: asyncpg.Connection
) -> None:
    kept = KeptConnections(connector(settings), size=2)
    try:
        idle, lent = await kept.acquire(), await kept.acquire()
        kept.release(idle)
        kept.expire()
        assert idle.is_closed()
        assert not lent.is_closed()  # its statement may still be on its way
        kept.release(lent)
        assert lent.is_closed()
        await _only_a_fresh_one(kept, [idle, lent])
    finally:
        await kept.close()


async def test_waiters_are_told_when_the_connections_close(settings: Settings) -> None:
    kept = KeptConnections(connector(settings), size=1)
    held = await kept.acquire()
    waiting = asyncio.ensure_future(kept.acquire())
    await asyncio.sleep(0.05)
    await kept.close()
    with pytest.raises(asyncpg.InterfaceError):
        await waiting
    kept.release(held)  # given back after the close: ended, not kept
    assert held.is_closed()


async def test_connections_idle_past_their_lifetime_are_closed_and_opened_anew(
    settings: Settings,
) -> None:
    """What a burst opened does not sit idle for good: a firewall that forgets idle flows
    without a word would leave such a connection to hang the statement that next takes it."""

    kept = KeptConnections(connector(settings), size=3, max_idle_s=0.3)
    try:
        burst = [await kept.acquire() for _ in range(3)]
        for conn in burst:
            kept.release(conn)
        assert kept.count == 3
        await asyncio.sleep(0.5)
        await _only_a_fresh_one(kept, burst)  # every idle one is past its lifetime
    finally:
        await kept.close()
