"""Articles withdrawn or deleted since the ranking was computed, kept out of it at once.

The job ranks only visible articles, but its result stands until the next run (a minute),
and a run that read the counters just before a withdraw may publish just after it. So the
interactions projector, as it commits a withdraw or a delete, adds the article to
``<prefix>:ranking:hidden`` (a sorted set, scored by when) and bumps the result's version;
a publish takes it out again. Every API process re-reads the result when the version moves
and leaves hidden articles out of what it serves. Members are pruned as new ones come once
they are ``KEEP_S`` old and either that much older than the stored result's computation (a
run begun that long after a mark has left the article out on its own) or not named by the
result at all; a result computed before the mark (the job stalled, failing, or not
started) keeps the marks of its own entries, however old.

Erasures are kept the same way (``<prefix>:ranking:erased``): the users projector, as it
commits one, adds the person, and the served ranking shows their articles' author as
erased (``{"id", "nickname": null, "deleted": true}``, as a run after it would) instead of
their nickname.
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

# KEYS: the set, result hash. ARGV: now, keep_s, what a member names in the result's
# entries ('id': the entry, 'author': its author), then pairs (id, '1' add or '0' take
# out). A member at least ``keep_s`` old goes if it is that much older than the result's
# computation too (the run left it out on its own), or if the result does not name it (no
# run in flight can still publish one from before it, and the stored one never shows it);
# so however long the job is away, the set holds the last hour's marks and those of the
# result's own entries. The version moves only if a result exists (a new one is published
# with its own).
_MARK = """
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - keep, 'WITHSCORES')
if #old > 0 then
  local computed = tonumber(redis.call('HGET', KEYS[2], 'computed_at') or '')
  local named = {}
  local body = redis.call('HGET', KEYS[2], 'body')
  if body then
    for _, e in ipairs(cjson.decode(body)) do
      local id = e['id']
      if ARGV[3] == 'author' then
        id = type(e['author']) == 'table' and e['author']['id'] or nil
      end
      if type(id) == 'string' then named[id] = true end
    end
  end
  for i = 1, #old, 2 do
    local member, score = old[i], tonumber(old[i + 1])
    if (computed ~= nil and score < computed - keep) or not named[member] then
      redis.call('ZREM', KEYS[1], member)
    end
  end
end
for i = 4, #ARGV, 2 do
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

    def __init__(self, redis: Redis, *, key: str, result: str, names: str) -> None:
        self._redis = redis
        self._key, self._result = key, result
        self._names = names  # what a member is in the result's entries: "id" or "author"
        self._mark = redis.register_script(_MARK)

    async def _set(self, marks: Mapping[str, bool]) -> None:
        """Add the ids mapped to True, take out those mapped to False. Raises ``Transient``
        or ``Unavailable`` if Redis does not take it: the projector's commit waits, as for
        a cache fence, so what it commits is never served otherwise after it."""
        if not marks:
            return
        args: list[str | int | float] = [time.time(), KEEP_S, self._names]
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
        super().__init__(redis, key=keys.hidden, result=keys.result, names="id")

    async def mark(self, visible: Mapping[str, bool]) -> None:
        """Hide the articles mapped to False, show again those mapped to True (raises as
        ``_set`` says)."""
        await self._set({article_id: not shown for article_id, shown in visible.items()})


class ErasedAuthors(_Marks):
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        keys = RankingKeys(prefix)
        super().__init__(redis, key=keys.erased, result=keys.result, names="author")

    async def mark(self, user_ids: Iterable[str]) -> None:
        """The people erased (raises as ``_set`` says)."""
        await self._set(dict.fromkeys(user_ids, True))
