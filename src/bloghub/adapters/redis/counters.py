"""The per-article counters in Redis (``<prefix>:interactive:article:<id>``): a cache that
the interactions projector owns, read on every article detail.

Each hash carries ``v``, the version of the counts it holds: one past the log offset of
the last interaction of that article applied. A projector writes only over an older
version, so an instance that lost the partition cannot put back counts that the new owner
has moved past. A reader that misses fills from the read model with version 0 and only
where nothing is stored: any projector write wins over it. So a hash lost to a flush or a
restart comes back from Postgres on its next read, and is right from the next write on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from bloghub.adapters.redis.local_tier import channel

FIELDS = ("read_cnt", "like_cnt", "collect_cnt")

# KEYS: the hashes. ARGV: per key, version, the three counts and the author; last, the
# channel of the in-process tiers (adapters/redis/local_tier.py), told of each hash written
# with its version, so copies of older versions held by API processes are dropped.
_WRITE_NEWER = """
local changes = {}
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 5
  local v = tonumber(ARGV[at + 1])
  local stored = tonumber(redis.call('HGET', key, 'v') or '-1')
  if v > stored then
    redis.call('HSET', key, 'v', v, 'read_cnt', ARGV[at + 2], 'like_cnt', ARGV[at + 3],
      'collect_cnt', ARGV[at + 4], 'author', ARGV[at + 5])
    changes[#changes + 1] = {key, v}
  end
end
if #changes > 0 then
  redis.call('PUBLISH', ARGV[#ARGV], cjson.encode(changes))
end
return 1
"""

# KEYS: one hash. ARGV: the three counts and the author. Only where no hash is stored.
_FILL_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'v', 0, 'read_cnt', ARGV[1], 'like_cnt', ARGV[2],
    'collect_cnt', ARGV[3], 'author', ARGV[4])
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
        *values, author, v = await self._redis.hmget(self.key(article_id), [*FIELDS, "author", "v"])
        found = [int(x) for x in values if x is not None]
        if len(found) < len(FIELDS) or author is None or v is None:
            return None
        who = author.decode() if isinstance(author, bytes) else author
        return Tally(Counts(*found), who), int(v)

    async def fill(self, article_id: str, tally: Tally) -> None:
        c = tally.counts
        await self._fill(
            keys=[self.key(article_id)],
            args=[c.read_cnt, c.like_cnt, c.collect_cnt, tally.author_id],
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
        await self._write(keys=keys, args=[*args, channel(self._prefix)])

    async def forget(self, article_ids: Iterable[str]) -> None:
        keys = [self.key(i) for i in article_ids]
        if keys:
            await self._redis.delete(*keys)
