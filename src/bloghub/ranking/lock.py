"""The ranking's Redis lock and the fenced write of its result.

One process at a time computes the ranking: it holds ``<prefix>:ranking:lock``, whose value
is a fencing token (a number that only grows, from ``<prefix>:ranking:fence``), and renews
it every third of its TTL while it works. A holder that dies stops renewing; its lock runs
out and the next instance that asks takes it, with a larger token, within one TTL.

A holder may not know that it has lost the lock (a pause longer than the TTL: a stalled
event loop, a stopped process, a slow network). Its result is therefore written by a
script that first checks, in the same atomic step, that the lock still names its token and
that no larger token has written since; a stale holder's write changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS: lock, fence counter. ARGV: TTL in ms, the token held so far ('' for none).
# The holder's call renews its lock; anyone else's takes a free lock with a new token.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return tonumber(current)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""

# KEYS: lock. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lock, result hash. ARGV: token, body, computed_at, holder.
# Returns the new version, or 0 when the token no longer holds the lock.
_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local last = tonumber(redis.call('HGET', KEYS[2], 'token') or '0')
if last > tonumber(ARGV[1]) then return 0 end
local version = redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'body', ARGV[2],
           'computed_at', ARGV[3], 'holder', ARGV[4])
return version
"""


@dataclass(frozen=True, slots=True)
class RankingKeys:
    prefix: str

    @property
    def lock(self) -> str:
        return f"{self.prefix}:ranking:lock"

    @property
    def fence(self) -> str:
        return f"{self.prefix}:ranking:fence"

    @property
    def result(self) -> str:
        return f"{self.prefix}:ranking:top_n"

    @property
    def hidden(self) -> str:
        return f"{self.prefix}:ranking:hidden"

    @property
    def erased(self) -> str:
        return f"{self.prefix}:ranking:erased"


# The lock key lives this share of the TTL setting, and a standby asks for it every
# ``STANDBY_SHARE`` of it: a dead holder's lock is gone at most 0.8 TTL after its last
# renewal (so after its death), and a standby has it 0.2 TTL later at most, within one TTL
# in all. The holder renews every third of the TTL, well inside the key's life.
HOLD_SHARE = 0.8
STANDBY_SHARE = 0.2
RENEW_SHARE = 1 / 3


class RankingLock:
    """One process's hold on the ranking lock (``token`` is 0 while it holds nothing)."""

    def __init__(self, redis: Redis, keys: RankingKeys, *, ttl_s: float, holder: str) -> None:
        self._redis = redis
        self.keys = keys
        self._ttl_ms = max(1, int(ttl_s * 1000 * HOLD_SHARE))
        self.holder = holder
        self.token = 0
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._publish = redis.register_script(_PUBLISH)

    async def hold(self) -> bool:
        """Take the lock if it is free, renew it if it is ours; False if another holds it."""
        held = str(self.token) if self.token else ""
        token = int(
            await self._acquire(keys=[self.keys.lock, self.keys.fence], args=[self._ttl_ms, held])
        )
        self.token = token
        return token > 0

    async def publish(self, body: bytes, computed_at: float) -> int:
        """Write a result under our token; the new version, or 0 if the lock was lost."""
        if not self.token:
            return 0
        version = int(
            await self._publish(
                keys=[self.keys.lock, self.keys.result],
                args=[self.token, body, repr(computed_at), self.holder],
            )
        )
        if version == 0:
            self.token = 0
        return version

    async def release(self) -> None:
        if self.token:
            await self._release(keys=[self.keys.lock], args=[self.token])
            self.token = 0
