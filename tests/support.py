"""Helpers for tests that drive the log and projector processes directly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bloghub.events.base import Event, Recorded, envelop
from bloghub.events.log import EventLog
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
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
