"""What a projector tells operators after each commit: how many events it applied and when
it last committed. Kept in Redis (no TTL) so the ops dashboard can tell STOP from STALL."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError


def applied_key(prefix: str, group: str) -> str:
    return f"{prefix}:ops:applied:{group}"


def last_commit_key(prefix: str, group: str) -> str:
    return f"{prefix}:ops:lastcommit:{group}"


class CommitStats:
    """Told of every commit, it writes the figures off the batch's path: the first at once,
    then at most one write per ``INTERVAL_S`` with what gathered meanwhile. A write per
    batch was a Redis round trip awaited by every lane after every commit, and at low
    rates (a batch of an event or two) a thirtieth of the projectors' process."""

    INTERVAL_S = 1.0

    def __init__(self, redis: Redis, *, prefix: str, group: str) -> None:
        self._redis = redis
        self._applied = applied_key(prefix, group)
        self._last = last_commit_key(prefix, group)
        self._pending = 0
        self._committed_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def committed(self, applied: int) -> None:
        self._pending += applied
        self._committed_at = time.time()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_due(), name="commit-stats")

    async def flush(self) -> None:
        """Write what is pending without waiting out the interval (a stopping runner)."""
        self._hurry.set()
        if self._task is not None:
            await self._task
        await self._write()
        self._hurry.clear()

    async def _write_due(self) -> None:
        while self._committed_at is not None:
            await self._write()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), self.INTERVAL_S)

    async def _write(self) -> None:
        if self._committed_at is None:
            return
        applied, at = self._pending, self._committed_at
        self._pending, self._committed_at = 0, None
        # Best effort: losing a statistic must never hold up projection.
        with suppress(RedisError):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(self._applied, applied)
                pipe.set(self._last, repr(at))
                await pipe.execute()
