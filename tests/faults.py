"""Faults for tests, each confined to what the test owns: its own database's settings, a
Redis server it starts itself. Shared services are never reconfigured."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bloghub.events.base import registry
from bloghub.projections.dead_letters import DeadLetters, dlq_count_key
from bloghub.projections.heartbeat import Heartbeat, read_heartbeats
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.settings import Settings
from tests.conftest import BASE_DSN
from tests.integration.test_sinks import SignupsByDomain
from tests.private_redis import private_redis
from tests.support import wait_until


async def waits(redis: Redis, prefix: str, projector: str = "*") -> list[dict[str, Any]]:
    """What the live instances' heartbeats say they wait for."""
    return [w for beat in await read_heartbeats(redis, prefix, projector) for w in beat["waiting"]]


async def until_waiting(redis: Redis, prefix: str, reason: str, where: str | None = None) -> None:
    async def said() -> bool:
        return any(
            w["reason"] == reason and (where is None or w["where"] == where)
            for w in await waits(redis, prefix)
        )

    await wait_until(said, timeout_s=60)


async def dead_lettered(redis: Redis, prefix: str, projector: str) -> int:
    return int(await redis.get(dlq_count_key(prefix, projector)) or 0)


@contextlib.asynccontextmanager
async def running(runner: ProjectorRunner, beat: Heartbeat | None = None) -> AsyncIterator[None]:
    """The runner (and its heartbeat) in this event loop until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop))]
    if beat is not None:
        tasks.append(asyncio.create_task(beat.run(stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


@contextlib.asynccontextmanager
async def dead_letters(settings: Settings, redis: Redis) -> AsyncIterator[DeadLetters]:
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=settings.prefix, redis=redis)
    await dead.start()
    try:
        yield dead
    finally:
        await dead.close()


@contextlib.asynccontextmanager
async def admin() -> AsyncIterator[asyncpg.Connection]:
    """A connection to the server's own database, from which a test database is altered."""
    conn = await asyncpg.connect(BASE_DSN)
    try:
        yield conn
    finally:
        await conn.close()


async def end_sessions(conn: asyncpg.Connection, database: str) -> None:
    """End every client session in ``database``, so new ones pick up its changed settings.

    Only client backends: an autovacuum worker in the database runs as the superuser, and
    ending it would be refused to the test's role."""
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        database,
    )


def database_of(settings: Settings) -> str:
    return settings.asyncpg_dsn.rsplit("/", 1)[1]


@contextlib.asynccontextmanager
async def read_only(settings: Settings) -> AsyncIterator[None]:
    """The test's database refuses writes (as a standby does after a failover) while the
    block runs."""
    name = database_of(settings)
    async with admin() as conn:
        await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await end_sessions(conn, name)
        try:
            yield
        finally:
            await conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            await end_sessions(conn, name)


@contextlib.asynccontextmanager
async def refusing_connections(settings: Settings) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """The test's database takes no connections (as a server that is down) until the
    block ends or it calls what it was given."""
    name = database_of(settings)
    async with admin() as conn:

        async def back() -> None:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await end_sessions(conn, name)
        try:
            yield back
        finally:
            await back()


@contextlib.asynccontextmanager
async def private_redis_client() -> AsyncIterator[Redis]:
    """A client of a Redis server of the test's own, so it may be reconfigured."""
    async with private_redis() as server:
        client = server.client()
        try:
            yield client
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def out_of_memory(redis: Redis) -> AsyncIterator[None]:
    """The (private) Redis refuses every write with OOM while the block runs."""
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", "1")
    try:
        yield
    finally:
        await redis.config_set("maxmemory", "0")


def signups_runner(
    settings: Settings, prefix: str, store: Redis, heartbeats: Redis, dead: DeadLetters
) -> tuple[SignupsByDomain, ProjectorRunner, Heartbeat]:
    """The Redis sink's test projector (signups per email domain, in ``store``) under a real
    runner of small batches, with its heartbeat in ``heartbeats``: what the fault tests
    watch wait and recover."""
    projector = SignupsByDomain(store, prefix=prefix)
    beat = Heartbeat(heartbeats, prefix=prefix, projector=projector.name, generation=1, ttl_s=15)
    runner = ProjectorRunner(
        projector,
        config=RunnerConfig(bootstrap=settings.kafka_bootstrap, prefix=prefix, batch_max_events=64),
        registry=registry,
        dead_letters=dead,
        heartbeat=beat,
    )
    return projector, runner, beat
