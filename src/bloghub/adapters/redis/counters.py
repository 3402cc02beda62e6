"""The per-article counters in Redis (``<prefix>:interactive:article:<id>``): a cache that
the interactions projector owns, read on every article detail.

Each hash carries ``v``, the version of the counts it holds: one past the log offset of
the last interaction of that article applied. A projector writes only over an older
version, so an instance that lost the partition cannot put back counts that the new owner
has moved past. A reader that misses fills from the read model with version 0 and only
where nothing is stored: any projector write wins over it. So a hash lost to a flush or a
restart comes back from Postgres on its next read, and is right from the next write on.

Every hash lives ``HASH_TTL_S`` from its last write or fill, so one the projector failed to
refresh (a crash between its commit and its hook, a Redis that refused the write for
longer than ``CounterWrites`` kept trying) is read from Postgres again within that bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.adapters.redis.errors import translated
from bloghub.adapters.redis.local_tier import channel

log = structlog.get_logger(__name__)

FIELDS = ("read_cnt", "like_cnt", "collect_cnt")

# How long a hash outlives its last write or fill. A hot article's hash is rewritten long
# before; a cold one costs a reader one read of Postgres per period. It bounds how long a
# hash whose refresh was lost can show counts older than the read model.
HASH_TTL_S = 600

# KEYS: the hashes. ARGV: per key, version, the three counts and the author; then the
# hashes' TTL; last, the channel of the in-process tiers (adapters/redis/local_tier.py),
# told of each hash written with its version, so copies of older versions held by API
# processes are dropped.
_WRITE_NEWER = """
local changes = {}
local ttl = ARGV[#ARGV - 1]
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 5
  local v = tonumber(ARGV[at + 1])
  local stored = tonumber(redis.call('HGET', key, 'v') or '-1')
  if v > stored then
    redis.call('HSET', key, 'v', v, 'read_cnt', ARGV[at + 2], 'like_cnt', ARGV[at + 3],
      'collect_cnt', ARGV[at + 4], 'author', ARGV[at + 5])
    redis.call('EXPIRE', key, ttl)
    changes[#changes + 1] = {key, v}
  end
end
if #changes > 0 then
  redis.call('PUBLISH', ARGV[#ARGV], cjson.encode(changes))
end
return 1
"""

# KEYS: one hash. ARGV: the three counts, the author and the TTL. Only where no hash is
# stored.
_FILL_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'v', 0, 'read_cnt', ARGV[1], 'like_cnt', ARGV[2],
    'collect_cnt', ARGV[3], 'author', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Counts:
    read_cnt: int = 0
    like_cnt: int = 0
    collect_cnt: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "read_cnt": self.read_cnt,
            "like_cnt": self.like_cnt,
            "collect_cnt": self.collect_cnt,
        }


@dataclass(frozen=True, slots=True)
class Tally:
    """An article's counts and its author (whose own reads are not counted)."""

    counts: Counts
    author_id: str


class CounterCache:
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._write = redis.register_script(_WRITE_NEWER)
        self._fill = redis.register_script(_FILL_ABSENT)

    def key(self, article_id: str) -> str:
        return f"{self._prefix}:interactive:article:{article_id}"

    async def get(self, article_id: str) -> Tally | None:
        found = await self.get_versioned(article_id)
        return None if found is None else found[0]

    async def get_versioned(self, article_id: str) -> tuple[Tally, int] | None:
        """The stored counts with the version they are (0: filled by a reader)."""
        async with translated():
            *values, author, v = await self._redis.hmget(
                self.key(article_id), [*FIELDS, "author", "v"]
            )
        found = [int(x) for x in values if x is not None]
        if len(found) < len(FIELDS) or author is None or v is None:
            return None
        who = author.decode() if isinstance(author, bytes) else author
        return Tally(Counts(*found), who), int(v)

    async def fill(self, article_id: str, tally: Tally) -> None:
        c = tally.counts
        async with translated():
            await self._fill(
                keys=[self.key(article_id)],
                args=[c.read_cnt, c.like_cnt, c.collect_cnt, tally.author_id, HASH_TTL_S],
            )

    async def write(self, versioned: Mapping[str, tuple[int, Tally]]) -> None:
        """Store counts by article, each over an older version only."""
        if not versioned:
            return
        keys: list[str] = []
        args: list[int | str] = []
        for article_id, (version, t) in sorted(versioned.items()):
            c = t.counts
            keys.append(self.key(article_id))
            args += [version, c.read_cnt, c.like_cnt, c.collect_cnt, t.author_id]
        await self._write(keys=keys, args=[*args, HASH_TTL_S, channel(self._prefix)])

    async def forget(self, article_ids: Iterable[str]) -> None:
        keys = [self.key(i) for i in article_ids]
        if keys:
            await self._redis.delete(*keys)


class CounterWrites:
    """The projector's writes of the counter hashes, kept until Redis has taken them.

    A write Redis refuses (down, out of memory, read-only) is kept, and tried again with
    the next write and by a task of its own with back-off, until it lands: the lane that
    committed the counts goes on meanwhile. The version rule makes every order of these
    writes safe (a kept write older than what a hash holds changes nothing), so a kept
    write of an article is replaced by any newer one. A write kept longer than twice the
    hashes' TTL is dropped: any hash written before it failed has expired by then, and
    readers refill from Postgres."""

    RETRY_FIRST_S = 0.1
    RETRY_MOST_S = 5.0
    CHUNK = 500  # hashes per script call: a long outage may leave many kept

    def __init__(self, cache: CounterCache, *, keep_s: float = 2 * HASH_TTL_S) -> None:
        self.cache = cache
        self._keep_s = keep_s
        # article -> (version, tally, when first kept)
        self._kept: dict[str, tuple[int, Tally, float]] = {}
        self._retrying: asyncio.Task[None] | None = None

    @property
    def kept(self) -> int:
        """How many articles' counts wait for Redis."""
        return len(self._kept)

    async def write(self, versioned: Mapping[str, tuple[int, Tally]]) -> None:
        """Store counts by article (each over an older version only), with any kept
        before; what Redis refuses is kept and retried. Never raises a Redis error."""
        now = time.monotonic()
        for article_id, (version, tally) in versioned.items():
            held = self._kept.get(article_id)
            if held is None or held[0] < version:
                self._kept[article_id] = (version, tally, held[2] if held else now)
        if not await self._flush() and (self._retrying is None or self._retrying.done()):
            self._retrying = asyncio.create_task(self._retry(), name="counter-writes")

    async def _flush(self) -> bool:
        """Write what is kept; whether all of it landed."""
        expired = time.monotonic() - self._keep_s
        for article_id in [a for a, (_, _, at) in self._kept.items() if at < expired]:
            del self._kept[article_id]
        items = sorted(self._kept.items())
        for start in range(0, len(items), self.CHUNK):
            chunk = items[start : start + self.CHUNK]
            try:
                await self.cache.write({a: (v, t) for a, (v, t, _) in chunk})
            except RedisError as exc:
                log.warning("counters.write_refused", error=repr(exc), kept=len(self._kept))
                return False
            for article_id, held in chunk:
                if self._kept.get(article_id) is held:  # not replaced by a newer one meanwhile
                    del self._kept[article_id]
        return True

    async def _retry(self) -> None:
        delay = self.RETRY_FIRST_S
        while self._kept:
            await asyncio.sleep(delay)
            if await self._flush():
                return
            delay = min(delay * 2, self.RETRY_MOST_S)
