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
invalidated since. Each bump is announced on the in-process tiers' channel in the same
script, so no API process keeps a body built from the entry as it was before.

The fence is what keeps a stale entry from being served, so it is not best effort: a fence
that cannot be set raises (``Transient``/``Unavailable``) and the projector's commit does not
happen; the runner waits for Redis and tries the batch again. Once set, the fence has
replaced the old entry, so nothing of it is left to serve, and a reader that met the fence
never stores what it read (it may have read the rows just before the commit). A lift that
fails after the commit is therefore never urgent, but it is not dropped either: it is
retried in the background until it lands, as a sweep that bumps the counter and deletes an
entry unless it is a fence (a late lift must not lift a newer batch's fence before that
batch commits; a fence left standing only costs cache hits until it runs out). The sweep
covers what the fence cannot: a fence lost with a Redis restart or failover, or one that
ran out before a slow commit, with a copy filled meanwhile. A fence that is never lifted
(the projector died between the two) runs out after ``FENCE_TTL_S``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.adapters.redis.errors import translate
from bloghub.adapters.redis.local_tier import channel
from bloghub.errors import Transient

log = structlog.get_logger(__name__)

FENCE = b"\x00fenced"
FENCE_TTL_S = 30
# A counter must outlive every fill that noted it: a fill is one read of the store (a
# request's or a pre-warm's), seconds at most. Should it expire first, a late fill that
# noted "no counter" could land on an entry invalidated meanwhile. A counter that did
# expire starts again from the server's clock in milliseconds, never from 1 (see _BUMP),
# so it never goes back to a value a fill or an in-process tier has already noted: it
# would take a thousand bumps a second over a counter's life to outrun the clock (one
# key is bumped twice per projector batch that touches it). Milliseconds, not finer: the
# announcement's JSON (Redis's cjson) keeps 14 significant digits.
COUNTER_TTL_S = 3600
# Failed lifts are retried with back-off up to this many seconds...
LIFT_RETRY_MOST_S = 5.0
# ...and this many keys per script.
LIFT_CHUNK = 500

# KEYS: entry, counter. ARGV: the counter as noted before the store was read ('' for none),
# the value, its TTL. An existing entry is a fence (keep it) or a fill as fresh as this one.
_FILL = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# KEYS: entries, then their counters. ARGV: what to do ('fence' sets the marker, 'lift'
# deletes the entry, 'sweep' deletes it unless it is a fence), the fence marker, fence TTL,
# counter TTL, the channel on which the new counters are announced to in-process tiers.
# A refused first write (OOM, READONLY) fails the script before it has changed anything.
_BUMP = """
local n = #KEYS / 2
local changes = {}
local now = nil
for i = 1, n do
  if redis.call('EXISTS', KEYS[n + i]) == 0 then
    if now == nil then
      local t = redis.call('TIME')
      now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
    end
    redis.call('SET', KEYS[n + i], now)
  end
  local counter = redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], ARGV[4])
  if ARGV[1] == 'fence' then
    redis.call('SET', KEYS[i], ARGV[2], 'EX', ARGV[3])
  elseif ARGV[1] == 'lift' or redis.call('GET', KEYS[i]) ~= ARGV[2] then
    redis.call('DEL', KEYS[i])
  end
  changes[i] = {KEYS[i], counter}
end
redis.call('PUBLISH', ARGV[5], cjson.encode(changes))
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
        # Fills in flight, by key and what their reader saw of it: a reader joins only a
        # fill that began after the same last invalidation (one begun before a commit could
        # answer what the commit changed).
        self._inflight: dict[tuple[str, bytes | str | None, bool], asyncio.Future[Any]] = {}
        self._fill = redis.register_script(_FILL)
        self._bump = redis.register_script(_BUMP)
        # Lifts that failed after their commit, by key: the number of the latest failure,
        # so a sweep only clears what it was sent after.
        self._unlifted: dict[str, int] = {}
        self._failures = 0
        self._sweeping: asyncio.Task[None] | None = None

    def key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    @property
    def lifts_pending(self) -> int:
        """Entries whose lift failed and is still being retried."""
        return len(self._unlifted)

    async def get_or_fill(self, key: str, ttl_s: int, fill: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or ``fill()`` stored for ``ttl_s``; ``None`` is not cached.
        A Redis outage only costs the cache, never the answer."""
        return (await self.lookup(key, ttl_s, fill)).value

    async def lookup(self, key: str, ttl_s: int, fill: Callable[[], Awaitable[Any]]) -> Found:
        """``get_or_fill``, with the counter the value is current as of."""
        if not self._enabled:
            return Found(await fill(), None)
        try:
            raw, noted = await self._redis.mget([key, counter_key(key)])
        except RedisError:
            # Without the counter a fill cannot be checked against invalidations: it is
            # answered, never stored.
            raw, noted, reachable = None, None, False
        else:
            reachable = True
        if raw is not None and raw != FENCE:
            return Found(orjson.loads(raw), int(noted or 0))
        # A fenced entry is being changed by a commit, and what the store says now may be
        # from just before it: answered, never stored (were the fence to run out before its
        # lift lands, such a late copy would otherwise find nothing in its way).
        storable = reachable and raw is None
        flight = (key, noted, storable)
        running = self._inflight.get(flight)
        if running is not None:
            # Another request's fill: it may have read the store later than the counter.
            return Found(await asyncio.shield(running), None)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            value = await fill()
            if value is not None and storable:
                await self._store(key, noted, value, ttl_s)
            future.set_result(value)
            return Found(value, int(noted or 0) if storable else None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[flight]

    async def lookup_many(
        self, keys: Sequence[str], ttl_s: int, fill: Callable[[str], Awaitable[Any]]
    ) -> dict[str, Found]:
        """``lookup`` of each of ``keys`` (no two alike), the entries that are there read in
        one round trip; one that is not (absent, fenced, or Redis out of reach) is then
        looked up, and filled, as ``lookup`` does."""
        out: dict[str, Found] = {}
        if self._enabled and keys:
            try:
                seen = await self._redis.mget([*keys, *map(counter_key, keys)])
            except RedisError:
                seen = []
            for key, raw, noted in zip(keys, seen[: len(keys)], seen[len(keys) :], strict=False):
                if raw is not None and raw != FENCE:
                    out[key] = Found(orjson.loads(raw), int(noted or 0))
        for key in keys:
            if key not in out:
                out[key] = await self.lookup(key, ttl_s, partial(fill, key))
        return out

    async def warm(
        self,
        keys: Iterable[str],
        ttl_s: int,
        load: Callable[[], Awaitable[Mapping[str, Any]]],
    ) -> None:
        """A projector's pre-warm, after its fences are lifted: store what ``load`` reads
        from the store, under the same rule as a reader's fill, so a copy that an
        invalidation begun meanwhile has made stale is kept out; a fenced entry is left
        alone. Best effort."""
        wanted = list(keys)
        if not wanted:
            return
        try:
            seen = await self._redis.mget([*wanted, *map(counter_key, wanted)])
        except RedisError:
            return
        noted = dict(zip(wanted, seen[len(wanted) :], strict=True))
        open_ = [k for k, raw in zip(wanted, seen[: len(wanted)], strict=True) if raw != FENCE]
        if not open_:
            return
        values = await load()
        for key in open_:
            if values.get(key) is not None:
                await self._store(key, noted[key], values[key], ttl_s)

    async def _store(self, key: str, noted: bytes | str | None, value: Any, ttl_s: int) -> None:
        with contextlib.suppress(RedisError):
            await self._fill(
                keys=[key, counter_key(key)], args=[noted or b"", orjson.dumps(value), ttl_s]
            )

    async def fence(self, keys: Iterable[str]) -> None:
        """Before a commit: replace entries with the fence marker, so no reader serves or
        refills them until ``invalidate``. Raises ``Transient`` or ``Unavailable`` if Redis
        does not take it: the commit must not happen then, or readers could go on being
        served the entry it makes stale (Redis may refuse writes yet answer reads)."""
        wanted = list(keys)
        if not wanted:
            return
        mark = self._failures
        try:
            await self._run(wanted, "fence")
        except RedisError as exc:
            mapped = translate(exc)
            # Whatever Redis said, the event is not at fault: the projector waits.
            raise (Transient(f"cache fence not set: {exc}") if mapped is exc else mapped) from exc
        # A fence does all a lift that failed before it would (it bumps the counter and
        # replaces whatever the entry held): that lift need not be retried.
        self._landed(wanted, mark)

    async def invalidate(self, keys: Iterable[str]) -> None:
        """After the commit: drop entries (lifting their fences) and keep out every fill
        read before now. Never raises: a lift Redis refuses is retried in the background
        until it lands, while the fence keeps readers off the entry."""
        wanted = list(keys)
        if not wanted:
            return
        mark = self._failures
        try:
            await self._run(wanted, "lift")
        except RedisError as exc:
            log.warning("cache.lift_failed", keys=len(wanted), error=repr(exc))
            self._failures += 1
            self._unlifted.update(dict.fromkeys(wanted, self._failures))
            if self._sweeping is None or self._sweeping.done():
                self._sweeping = asyncio.create_task(self._sweep(), name="cache:lifts")
        else:
            self._landed(wanted, mark)

    async def _sweep(self) -> None:
        """Retry failed lifts until every one has landed."""
        delay = 0.05
        while self._unlifted:
            await asyncio.sleep(delay)
            sent = list(itertools.islice(self._unlifted, LIFT_CHUNK))
            mark = self._failures
            try:
                await self._run(sent, "sweep")
            except RedisError as exc:
                log.warning("cache.lift_retry_failed", keys=len(sent), error=repr(exc))
                delay = min(delay * 2, LIFT_RETRY_MOST_S)
                continue
            self._landed(sent, mark)
            delay = 0.05
        log.info("cache.lifts_landed")

    def _landed(self, keys: Iterable[str], mark: int) -> None:
        """Forget the failed lifts of ``keys`` recorded by ``mark``: a bump sent after them
        has covered them. One that failed while that bump was in flight is kept, since its
        commit may have come after the bump ran."""
        if self._unlifted:
            for key in keys:
                if self._unlifted.get(key, mark + 1) <= mark:
                    del self._unlifted[key]

    async def _run(self, keys: list[str], action: str) -> None:
        await self._bump(
            keys=[*keys, *map(counter_key, keys)],
            args=[action, FENCE, FENCE_TTL_S, COUNTER_TTL_S, channel(self._prefix)],
        )
