"""A JSON cache in Redis, keyed under the deployment prefix. Readers fill it; projectors
own it. Fills are single-flight per key, so a popular entry that expires does not send a
stampede to the store.

A projector fences the entries a batch makes stale just before its commit and lifts the
fence just after. A fenced key holds a marker (never JSON): readers take it as a miss and
read the store, and their fills are ``SET NX``, so none can put back a copy read before
the commit, however its timing falls around the commit. A fence that is never lifted (the
projector died between the two) runs out after ``FENCE_TTL_S``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

FENCE = b"\x00fenced"
FENCE_TTL_S = 30


class Cache:
    def __init__(self, redis: Redis, *, prefix: str, enabled: bool = True) -> None:
        self._redis = redis
        self._prefix = prefix
        self._enabled = enabled
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    def key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def get_or_fill(self, key: str, ttl_s: int, fill: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or ``fill()`` stored for ``ttl_s``; ``None`` is not cached.
        A Redis outage only costs the cache, never the answer."""
        if not self._enabled:
            return await fill()
        try:
            raw = await self._redis.get(key)
        except RedisError:
            raw = None
        if raw is not None and raw != FENCE:
            return orjson.loads(raw)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fill()
            if value is not None:
                with contextlib.suppress(RedisError):
                    # NX: a fence set while this fill read the store keeps it out.
                    await self._redis.set(key, orjson.dumps(value), ex=ttl_s, nx=True)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def put(self, key: str, value: Any, ttl_s: int) -> None:
        """Store a value as committed (a projector's pre-warm, after its fence is lifted)."""
        await self._redis.set(key, orjson.dumps(value), ex=ttl_s)

    async def fence(self, keys: Iterable[str]) -> None:
        """Before a commit: replace entries with the fence marker, so no reader serves or
        refills them until ``lift``. Best effort, like every cache write: a projector must
        not stall on a Redis outage (readers then go to the read models anyway)."""
        wanted = list(keys)
        if wanted:
            with contextlib.suppress(RedisError):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in wanted:
                        pipe.set(key, FENCE, ex=FENCE_TTL_S)
                    await pipe.execute()

    async def invalidate(self, keys: Iterable[str]) -> None:
        """Drop entries (and lift their fences), best effort."""
        wanted = list(keys)
        if wanted:
            with contextlib.suppress(RedisError):
                await self._redis.delete(*wanted)


def user_info_key(cache: Cache, user_id: str) -> str:
    return cache.key("user", "info", user_id)
