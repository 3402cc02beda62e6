"""A JSON cache in Redis, keyed under the deployment prefix. Readers fill it; projectors
own it. Fills are single-flight per key, so a popular entry that expires does not send a
stampede to the store.

Invalidation is versioned. Every entry has a counter beside it that each invalidation
bumps. A reader fetches the entry and its counter in one round trip; on a miss it reads
the store and stores what it read only if the counter has not moved since (a
compare-and-set in Lua). A projector bumps the counter and fences the entry (a marker,
never JSON, that readers take as a miss and no fill replaces) just before its commit, and
bumps it again as it lifts the fence just after. So a copy read at any moment before the
commit carries a counter the lift has passed and cannot land, however late its ``SET``
arrives; a copy that lands was read after the lift, so after the commit. Pre-warming obeys
the same rule: a projector that lost its partitions cannot put back what a newer owner has
invalidated since. A fence that is never lifted (the projector died between the two) runs
out after ``FENCE_TTL_S``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.adapters.redis.local_tier import channel

FENCE = b"\x00fenced"
FENCE_TTL_S = 30
# A counter must outlive every fill that noted it: a fill is one read of the store (a
# request's or a pre-warm's), seconds at most. Should it expire first, a late fill that
# noted "no counter" could land on an entry invalidated meanwhile.
COUNTER_TTL_S = 3600

# KEYS: entry, counter. ARGV: the counter as noted before the store was read ('' for none),
# the value, its TTL. An existing entry is a fence (keep it) or a fill as fresh as this one.
_FILL = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# KEYS: entries, then their counters. ARGV: the fence marker ('' lifts), fence TTL, counter
# TTL, the channel on which the new counters are announced to in-process tiers.
_INVALIDATE = """
local n = #KEYS / 2
local changes = {}
for i = 1, n do
  local counter = redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], ARGV[3])
  if ARGV[1] == '' then
    redis.call('DEL', KEYS[i])
  else
    redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  end
  changes[i] = {KEYS[i], counter}
end
redis.call('PUBLISH', ARGV[4], cjson.encode(changes))
return n
"""


def counter_key(key: str) -> str:
    return f"{key}#v"


@dataclass(frozen=True, slots=True)
class Found:
    """A value and the entry's counter as it was read (``None``: not known to be current
    as of any counter, such as a fenced entry or Redis out of reach: keep no copy)."""

    value: Any
    counter: int | None


class Cache:
    def __init__(self, redis: Redis, *, prefix: str, enabled: bool = True) -> None:
        self._redis = redis
        self._prefix = prefix
        self._enabled = enabled
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._fill = redis.register_script(_FILL)
        self._invalidate = redis.register_script(_INVALIDATE)

    def key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def get_or_fill(self, key: str, ttl_s: int, fill: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or ``fill()`` stored for ``ttl_s``; ``None`` is not cached.
        A Redis outage only costs the cache, never the answer."""
        return (await self.lookup(key, ttl_s, fill)).value

    async def lookup(self, key: str, ttl_s: int, fill: Callable[[], Awaitable[Any]]) -> Found:
        """``get_or_fill``, with the counter the value is current as of."""
        if not self._enabled:
            return Found(await fill(), None)
        storable = True
        try:
            raw, noted = await self._redis.mget([key, counter_key(key)])
        except RedisError:
            # Without the counter a fill cannot be checked against invalidations: it is
            # answered, never stored.
            raw, noted, storable = None, None, False
        counter = int(noted or 0) if storable and raw != FENCE else None
        if raw is not None and raw != FENCE:
            return Found(orjson.loads(raw), counter)
        running = self._inflight.get(key)
        if running is not None:
            # Another request's fill: the counter it noted is not known here.
            return Found(await asyncio.shield(running), None)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fill()
            if value is not None and storable:
                await self._store(key, noted, value, ttl_s)
            future.set_result(value)
            return Found(value, counter)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def warm(
        self,
        keys: Iterable[str],
        ttl_s: int,
        load: Callable[[], Awaitable[Mapping[str, Any]]],
    ) -> None:
        """A projector's pre-warm, after its fences are lifted: store what ``load`` reads
        from the store, under the same rule as a reader's fill, so a copy that an
        invalidation begun meanwhile has made stale is kept out. Best effort."""
        wanted = list(keys)
        if not wanted:
            return
        try:
            seen = await self._redis.mget([counter_key(k) for k in wanted])
        except RedisError:
            return
        values = await load()
        for key, noted in zip(wanted, seen, strict=True):
            if values.get(key) is not None:
                await self._store(key, noted, values[key], ttl_s)

    async def _store(self, key: str, noted: bytes | str | None, value: Any, ttl_s: int) -> None:
        with contextlib.suppress(RedisError):
            await self._fill(
                keys=[key, counter_key(key)], args=[noted or b"", orjson.dumps(value), ttl_s]
            )

    async def fence(self, keys: Iterable[str]) -> None:
        """Before a commit: replace entries with the fence marker, so no reader serves or
        refills them until ``invalidate``. Best effort, like every cache write: a projector
        must not stall on a Redis outage (readers then go to the read models anyway)."""
        await self._bump(keys, FENCE)

    async def invalidate(self, keys: Iterable[str]) -> None:
        """Drop entries (lifting their fences) and keep out every fill read before now."""
        await self._bump(keys, b"")

    async def _bump(self, keys: Iterable[str], marker: bytes) -> None:
        wanted = list(keys)
        if wanted:
            with contextlib.suppress(RedisError):
                await self._invalidate(
                    keys=[*wanted, *map(counter_key, wanted)],
                    args=[marker, FENCE_TTL_S, COUNTER_TTL_S, channel(self._prefix)],
                )
