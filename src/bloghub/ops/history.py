"""An hour of samples per consumer group, in Redis sorted sets scored by time."""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.asyncio import Redis


def history_key(prefix: str, group: str) -> str:
    return f"{prefix}:ops:history:{group}"


def sampled_key(prefix: str) -> str:
    """Every group with samples kept, scored by its latest: a generation switched out (or
    a migration's fill group) keeps its line on the charts for the hour its samples do."""
    return f"{prefix}:ops:history-groups"


class History:
    def __init__(self, redis: Redis, *, prefix: str, keep_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._keep_s = keep_s

    def _key(self, group: str) -> str:
        return history_key(self._prefix, group)

    async def add(self, group: str, sample: dict[str, Any]) -> None:
        at = float(sample["at"])
        key = self._key(group)
        sampled = sampled_key(self._prefix)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {orjson.dumps(sample): at})
            pipe.zremrangebyscore(key, "-inf", at - self._keep_s)
            pipe.zadd(sampled, {group: at})
            pipe.zremrangebyscore(sampled, "-inf", at - self._keep_s)
            await pipe.execute()

    async def groups_since(self, seconds: float) -> list[str]:
        """The groups sampled within the last ``seconds``, watched now or not."""
        low = time.time() - seconds
        raw = await self._redis.zrangebyscore(sampled_key(self._prefix), low, "+inf")
        return [g.decode() if isinstance(g, bytes) else str(g) for g in raw]

    async def since(self, group: str, seconds: float) -> list[dict[str, Any]]:
        low = time.time() - seconds
        raw = await self._redis.zrangebyscore(self._key(group), low, "+inf")
        return [_load(item) for item in raw]

    async def first_seen(self, group: str) -> float | None:
        """When the oldest sample kept of ``group`` was taken (at most ``keep_s`` ago)."""
        raw = await self._redis.zrange(self._key(group), 0, 0, withscores=True)
        return float(raw[0][1]) if raw else None

    async def latest(self, group: str) -> dict[str, Any] | None:
        raw = await self._redis.zrange(self._key(group), -1, -1)
        return _load(raw[0]) if raw else None


def _load(item: object) -> dict[str, Any]:
    if not isinstance(item, bytes | str):
        raise TypeError(f"unexpected history member {type(item).__name__}")
    value: dict[str, Any] = orjson.loads(item)
    return value
