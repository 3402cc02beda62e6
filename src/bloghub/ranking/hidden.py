"""Articles withdrawn or deleted since the ranking was computed, kept out of it at once.

The job ranks only visible articles, but its result stands until the next run (a minute),
and a run that read the counters just before a withdraw may publish just after it. So the
interactions projector, as it commits a withdraw or a delete, adds the article to
``<prefix>:ranking:hidden`` (a sorted set, scored by when) and bumps the result's version;
a publish takes it out again. Every API process re-reads the result when the version moves
and leaves hidden articles out of what it serves. Members are pruned as new ones come once
they are ``KEEP_S`` older than the stored result's computation (and than now): a run begun
that long after a mark has left the article out on its own, while a result computed before
the mark (the job stalled, failing, or not started) still needs it, however old it is.

Erasures are kept the same way (``<prefix>:ranking:erased``): the users projector, as it
commits one, adds the person, and the served ranking shows their articles' author as
erased (``{"id", "deleted": true}``, as a run after it would) instead of their nickname.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.adapters.redis.errors import translate
from bloghub.errors import Transient
from bloghub.ranking.lock import RankingKeys

KEEP_S = 3600

# KEYS: the set, result hash. ARGV: now, keep_s, then pairs (id, '1' add or '0' take
# out). The version moves only if a result exists (a new one is published with its
# own).
_MARK = """
local cut = tonumber(ARGV[1])
local computed = tonumber(redis.call('HGET', KEYS[2], 'computed_at') or '')
if computed ~= nil and computed < cut then cut = computed end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cut - tonumber(ARGV[2]))
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '1' then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HINCRBY', KEYS[2], 'version', 1) end
return 1
"""


class _Marks:
    """One of the sorted sets of ids the served ranking treats apart until a run has
    caught up with them; each mark bumps the result's version, so every API process
    re-reads it."""

    def __init__(self, redis: Redis, *, key: str, result: str) -> None:
        self._redis = redis
        self._key, self._result = key, result
        self._mark = redis.register_script(_MARK)

    async def _set(self, marks: Mapping[str, bool]) -> None:
        """Add the ids mapped to True, take out those mapped to False. Raises ``Transient``
        or ``Unavailable`` if Redis does not take it: the projector's commit waits, as for
        a cache fence, so what it commits is never served otherwise after it."""
        if not marks:
            return
        args: list[str | int | float] = [time.time(), KEEP_S]
        for member, on in sorted(marks.items()):
            args += [member, "1" if on else "0"]
        try:
            await self._mark(keys=[self._key, self._result], args=args)
        except RedisError as exc:
            mapped = translate(exc)
            raise (Transient(f"ranking not told: {exc}") if mapped is exc else mapped) from exc

    async def members(self) -> set[str]:
        found = await self._redis.zrange(self._key, 0, -1)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in found}


class HiddenArticles(_Marks):
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        keys = RankingKeys(prefix)
        super().__init__(redis, key=keys.hidden, result=keys.result)

    async def mark(self, visible: Mapping[str, bool]) -> None:
        """Hide the articles mapped to False, show again those mapped to True (raises as
        ``_set`` says)."""
        await self._set({article_id: not shown for article_id, shown in visible.items()})


class ErasedAuthors(_Marks):
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        keys = RankingKeys(prefix)
        super().__init__(redis, key=keys.erased, result=keys.result)

    async def mark(self, user_ids: Iterable[str]) -> None:
        """The people erased (raises as ``_set`` says)."""
        await self._set(dict.fromkeys(user_ids, True))
