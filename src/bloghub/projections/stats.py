"""What a projector tells operators after each commit: how many events it applied and when
it last committed. Kept in Redis (no TTL) so the ops dashboard can tell STOP from STALL."""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError


def applied_key(prefix: str, group: str) -> str:
    return f"{prefix}:ops:applied:{group}"


def last_commit_key(prefix: str, group: str) -> str:
    return f"{prefix}:ops:lastcommit:{group}"


class CommitStats:
    def __init__(self, redis: Redis, *, prefix: str, group: str) -> None:
        self._redis = redis
        self._applied = applied_key(prefix, group)
        self._last = last_commit_key(prefix, group)

    async def committed(self, applied: int) -> None:
        # Best effort: losing a statistic must never hold up projection.
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incrby(self._applied, applied)
                pipe.set(self._last, repr(time.time()))
                await pipe.execute()
        except RedisError:
            return
