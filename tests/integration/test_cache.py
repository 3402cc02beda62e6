"""The read-through cache on real Redis: single flight, and the fence a projector puts
around its commit, so no copy of rows read before the commit outlives it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.cache import FENCE, FENCE_TTL_S, Cache
from bloghub.settings import Settings


@pytest.fixture
async def cache(settings: Settings) -> AsyncIterator[Cache]:
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        yield Cache(redis, prefix=settings.prefix)
    finally:
        await redis.aclose()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = make_redis(settings.redis_url.get_secret_value())
    try:
        yield client
    finally:
        await client.aclose()


def counted(value: Any) -> tuple[list[int], Any]:
    calls: list[int] = []

    async def fill() -> Any:
        calls.append(1)
        return value

    return calls, fill


async def test_a_fill_is_stored_once_and_shared(cache: Cache) -> None:
    key = cache.key("t", secrets.token_hex(4))
    gate = asyncio.Event()
    calls: list[int] = []

    async def slow() -> dict[str, int]:
        calls.append(1)
        await gate.wait()
        return {"n": 1}

    readers = [asyncio.create_task(cache.get_or_fill(key, 60, slow)) for _ in range(20)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(*readers) == [{"n": 1}] * 20
    assert len(calls) == 1  # one trip to the store for twenty readers
    again, fill = counted({"n": 2})
    assert await cache.get_or_fill(key, 60, fill) == {"n": 1}
    assert again == []


async def test_a_copy_read_before_the_commit_cannot_be_put_back(cache: Cache, redis: Redis) -> None:
    key = cache.key("t", secrets.token_hex(4))
    gate = asyncio.Event()

    async def old_rows() -> dict[str, str]:
        await gate.wait()  # the reader has read the old rows; the projector commits now
        return {"title": "old"}

    reader = asyncio.create_task(cache.get_or_fill(key, 60, old_rows))
    await asyncio.sleep(0.05)
    await cache.fence([key])  # just before the projector's commit
    gate.set()
    assert await reader == {"title": "old"}  # what it read, answered once...
    assert await redis.get(key) == FENCE  # ...but never stored

    # While fenced (the commit is done, the fence not yet lifted) readers go to the store.
    calls, new_rows = counted({"title": "new"})
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert len(calls) == 2
    assert 0 < await redis.ttl(key) <= FENCE_TTL_S  # a fence never lifted runs out

    await cache.invalidate([key])  # just after the commit: the fence is lifted
    calls, new_rows = counted({"title": "new"})
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert len(calls) == 1  # filled once, then served from the cache
