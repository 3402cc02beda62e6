"""Helpers for tests that drive the log and projector processes directly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bloghub.adapters.postgres.generations import create_generation
from bloghub.adapters.redis import make_redis
from bloghub.events.base import Event, Recorded, envelop, registry
from bloghub.events.log import EventLog
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.postgres_sink import PostgresProjector, projector_engine
from bloghub.projections.runner import ProjectorRunner, RunnerConfig
from bloghub.settings import Settings


async def append_registrations(log: EventLog, count: int, *, tag: str, chunk: int = 1000) -> None:
    for start in range(0, count, chunk):
        envs = [
            envelop(
                UserRegistered(
                    user_id=new_id_str(),
                    email=f"{tag}-{i}@example.com",
                    password_hash="$argon2id$synthetic",
                ),
                actor_id=None,
                request_id=None,
            )
            for i in range(start, min(count, start + chunk))
        ]
        await log.append(envs)


async def applied(settings: Settings, projector: str, generation: int = 1) -> int:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM projector_checkpoints "
            "WHERE projector = $1 AND generation = $2",
            projector,
            generation,
        )
        return int(value)
    finally:
        await conn.close()


def projector_process(
    settings: Settings, *names: str, log_file: Path, batch: int = 500
) -> subprocess.Popen[bytes]:
    """``bloghub project NAME…`` as a child process; its log goes to ``log_file``."""
    env = {
        **os.environ,
        "BLOGHUB_MODE": "test",
        "BLOGHUB_PREFIX": settings.prefix,
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
        "BLOGHUB_BATCH_MAX_EVENTS": str(batch),
    }
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "project", *names],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def wait_until(condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; a test that needs more than the bound fails."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await condition():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(0.05)


def recorded(event: Event, *, topic: str, partition: int, offset: int) -> Recorded:
    """An event as if read from ``topic``/``partition`` at ``offset``."""
    env = envelop(event, actor_id=None, request_id=None)
    return Recorded(env, event, topic, partition, offset, 0)


async def replay_generation(
    settings: Settings,
    projector: type[PostgresProjector],
    generation: int,
    *,
    until: int,
    timeout_s: float = 120.0,
) -> None:
    """Build ``generation`` of ``projector`` from offset 0 beside the live one (not
    serving, no cache pre-warming) until its checkpoints sum to ``until``."""
    engine = projector_engine(settings.sqlalchemy_url, pool_size=2)
    redis = make_redis(settings.redis_url.get_secret_value())
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=settings.prefix, redis=redis)
    await dead.start()
    try:
        async with engine.begin() as conn:
            await create_generation(conn, projector.name, generation, activate=False)
        building = projector.build(engine, settings, generation=generation, cache=None)
        building.live = False
        runner = ProjectorRunner(
            building,
            config=RunnerConfig.from_settings(settings),
            registry=registry,
            dead_letters=dead,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))

        async def caught_up() -> bool:
            return await applied(settings, projector.name, generation) >= until

        try:
            await wait_until(caught_up, timeout_s=timeout_s)
        finally:
            stop.set()
            await task
    finally:
        await dead.close()
        await redis.aclose()
        await engine.dispose()
