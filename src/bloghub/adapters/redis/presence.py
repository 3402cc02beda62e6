"""Who is connected, cluster-wide, and when each user was last seen.

Each live socket is a member ``<process>:<socket>`` of its user's sorted set, scored by
the time it expires; its API process pushes that time forward while the socket lives
(``refresh``). A user is online while any member has not expired. A process that dies
without a word (SIGKILL, a lost machine) stops refreshing, so its members lapse within
``ttl_s``: no ghost outlives it. Times are Redis's own clock, so API hosts' clocks never
disagree about who is online.

An erased user is forgotten (``forget``): their set and last-seen time are deleted, and a
mark kept for a day stops their sockets, closed only when their processes hear that the
sessions ended, from writing either again on the way out.

Each process also records its number of connected clients, for the ops dashboard, in one
hash whose entries carry their own expiry (the same rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from bloghub.auth.limiter import redis_translated

# KEYS: presence set, last-seen key, erased mark. ARGV: member, ttl ms, most members,
# last-seen ttl s. An erased user's socket is let through unrecorded (its session has
# ended: the hub refuses it next).
_JOIN = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('SET', KEYS[2], now, 'EX', ARGV[4])
return 1
"""

# KEYS: presence set, last-seen key, erased mark, for each socket in turn. ARGV: ttl ms,
# last-seen ttl s, then one member per socket.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 3, #ARGV do
  local k = (i - 3) * 3
  if redis.call('EXISTS', KEYS[k + 3]) == 0 then
    redis.call('ZADD', KEYS[k + 1], now + ttl, ARGV[i])
    redis.call('PEXPIRE', KEYS[k + 1], ttl)
    redis.call('SET', KEYS[k + 2], now, 'EX', ARGV[2])
  end
end
return now
"""

# KEYS: presence set, last-seen key, erased mark. ARGV: member, last-seen ttl s.
_LEAVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[2], now, 'EX', ARGV[2])
end
return 1
"""

# KEYS: presence set, last-seen key, erased mark. ARGV: mark ttl s.
_FORGET = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return 1
"""

# KEYS: presence set, last-seen key. Returns {online (0/1), last seen ms or false}.
_STATUS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
local seen = redis.call('GET', KEYS[2])
if live > 0 then return {1, now} end
return {0, seen}
"""

# KEYS: the processes hash. ARGV: process id, its entry (JSON), ttl ms.
_PROCESS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[3]) .. ' ' .. ARGV[2])
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local v = redis.call('HGET', KEYS[1], field)
  if tonumber(string.match(v, '^%d+')) < now then redis.call('HDEL', KEYS[1], field) end
end
return now
"""

LAST_SEEN_KEEP_S = 90 * 24 * 3600
# Far longer than an erased user's socket outlives its ended session: every process
# re-checks its sockets' sessions each half ping interval.
ERASED_KEEP_S = 24 * 3600
_REFRESH_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Status:
    online: bool
    last_seen_ms: int | None


class Presence:
    def __init__(self, redis: Redis, *, prefix: str, ttl_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(ttl_s * 1000)
        self._processes = f"{prefix}:live:processes"
        self._join = redis.register_script(_JOIN)
        self._refresh = redis.register_script(_REFRESH)
        self._leave = redis.register_script(_LEAVE)
        self._status = redis.register_script(_STATUS)
        self._forget = redis.register_script(_FORGET)
        self._process = redis.register_script(_PROCESS)

    def _keys(self, user_id: str) -> list[str]:
        p = self._prefix
        return [
            f"{p}:presence:{user_id}",
            f"{p}:last-seen:{user_id}",
            f"{p}:presence-erased:{user_id}",
        ]

    async def join(self, user_id: str, member: str, *, most: int) -> bool:
        """Record ``member`` online for ``user_id``, unless the user already has ``most``
        live sockets anywhere (then False, and nothing is recorded)."""
        args: list[str | int] = [member, self._ttl_ms, most, LAST_SEEN_KEEP_S]
        async with redis_translated():
            return bool(await self._join(keys=self._keys(user_id), args=args))

    async def refresh(self, sockets: Sequence[tuple[str, str]]) -> None:
        """Push the expiry of every (user, member) forward by the TTL."""
        for start in range(0, len(sockets), _REFRESH_CHUNK):
            chunk = sockets[start : start + _REFRESH_CHUNK]
            keys = [k for user, _ in chunk for k in self._keys(user)]
            args: list[str | int] = [self._ttl_ms, LAST_SEEN_KEEP_S, *(m for _, m in chunk)]
            async with redis_translated():
                await self._refresh(keys=keys, args=args)

    async def leave(self, user_id: str, member: str) -> None:
        async with redis_translated():
            await self._leave(keys=self._keys(user_id), args=[member, LAST_SEEN_KEEP_S])

    async def status(self, user_id: str) -> Status:
        async with redis_translated():
            online, seen = await self._status(keys=self._keys(user_id)[:2])
        return Status(bool(online), int(seen) if seen is not None else None)

    async def forget(self, user_id: str) -> None:
        """An erased user's presence and last-seen time are deleted, and neither is
        written again by their sockets still open."""
        async with redis_translated():
            await self._forget(keys=self._keys(user_id), args=[ERASED_KEEP_S])

    async def record_process(self, process_id: str, entry: dict[str, object]) -> None:
        """This API process's line on the ops dashboard, kept for one TTL."""
        args: list[str | bytes | int] = [process_id, orjson.dumps(entry), self._ttl_ms]
        async with redis_translated():
            await self._process(keys=[self._processes], args=args)

    async def processes(self) -> list[dict[str, object]]:
        """Every API process that has recorded itself within its TTL, by process id."""
        async with redis_translated():
            found = await self._redis.hgetall(self._processes)
            now_s, micros = await self._redis.time()
        now_ms = now_s * 1000 + micros // 1000
        out: list[dict[str, object]] = []
        for raw in found.values():
            text = raw.decode() if isinstance(raw, bytes) else raw
            expires, _, entry = text.partition(" ")
            if int(expires) >= now_ms:
                out.append(orjson.loads(entry))
        return sorted(out, key=lambda e: str(e.get("process")))
