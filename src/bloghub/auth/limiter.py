"""Rate limiters. ``SlidingWindowLimiter``: one Redis sorted set per key, one Lua script per
call. Each allowed call is a member scored by the Redis server's clock (``TIME``), so
clients' clocks never matter and every instance of the app shares one window. Refused calls
are not recorded: a client hammering a closed window does not push its own reopening away.

``LocalLimiter``: token buckets in this process's memory, for the hot anonymous reads whose
limit need not be exact across processes and must not cost a Redis round trip.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.adapters.redis.wire import Wire, packed
from bloghub.coalesce import Coalesced
from bloghub.errors import Unavailable

# KEYS[1] the window; ARGV: limit, window in microseconds, a member unique to this call.
# Scores are microseconds since the epoch (< 2^53, exact in Lua's doubles).
# Returns {allowed, wait in microseconds, remaining}.
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, 0, limit - used - 1}
end
-- The call may go once enough entries have aged out to leave one slot free.
local oldest = redis.call('ZRANGE', KEYS[1], used - limit, used - limit, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, 0}
"""


# The same, for several windows in one round trip: KEYS the windows, then a hash when some
# windows are gated; ARGV the window in microseconds, how many windows (the first ones) are
# counted whatever the hash holds, the hash's field and the value it must hold for the rest
# to be counted, then per window its limit and a member. The gate is read here, in the
# script, so a window that must not count a call costs no round trip of its own. Windows
# are taken in order and the first that refuses stops the rest (as separate calls in that
# order would). Returns {index of the refusing key or 0, wait in microseconds}.
_ALLOW_ALL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local count = (#ARGV - 4) / 2
if count < #KEYS and redis.call('HGET', KEYS[#KEYS], ARGV[3]) ~= ARGV[4] then
  count = tonumber(ARGV[2])
end
for i = 1, count do
  local limit = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local used = redis.call('ZCARD', KEYS[i])
  if used >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], used - limit, used - limit, 'WITHSCORES')
    return {i, tonumber(oldest[2]) + window - now}
  end
  redis.call('ZADD', KEYS[i], now, ARGV[4 + 2 * i])
  redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
end
return {0, 0}
"""


Command = tuple[str | bytes | int, ...]  # a Redis command and its arguments


@dataclass(frozen=True, slots=True)
class Gate:
    """A condition the counting script reads itself: the hash at ``key`` (a full Redis key)
    holds ``value`` at ``field``. Windows behind it are counted only while it holds."""

    key: str
    field: str
    value: str


Rate = tuple[str, int]  # a window's key and its limit


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int
    remaining: int = 0


class SlidingWindowLimiter:
    def __init__(self, redis: Redis, prefix: str, *, wire: Wire) -> None:
        self._prefix = prefix
        self._redis = redis
        self._wire = wire  # the coalesced counts' round trip (adapters/redis/wire.py)
        self._script = redis.register_script(_ALLOW)
        self._all = redis.register_script(_ALLOW_ALL)
        self._counting: Coalesced[_Counting, tuple[object, list[object]]] = Coalesced(
            self._count_all
        )

    def key(self, key: str) -> str:
        return f"{self._prefix}:ratelimit:{key}"

    async def allow(self, key: str, limit: int, window_s: float) -> Decision:
        """Count one call against ``limit`` calls per ``window_s`` seconds for ``key``.

        ``retry_after_s`` is 0 when allowed, else whole seconds (at least 1) until a call
        would be allowed. Raises ``Unavailable`` when Redis cannot be reached.
        """
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate needs limit >= 1 and window_s > 0")
        window_us = max(1, round(window_s * 1_000_000))
        member = secrets.token_hex(8)
        async with redis_translated():
            allowed, wait_us, remaining = await self._script(
                keys=[self.key(key)], args=[limit, window_us, member]
            )
        if int(allowed):
            return Decision(True, 0, int(remaining))
        return Decision(False, max(1, math.ceil(int(wait_us) / 1_000_000)))

    async def allow_all(
        self,
        checks: Sequence[Rate],
        window_s: float,
        *,
        gated: Sequence[Rate] = (),
        gate: Gate | None = None,
    ) -> tuple[str, Decision] | None:
        """Count one call against each ``(key, limit)`` in order, in one round trip; the
        first key that refuses and its decision, or ``None`` if every one allowed it. The
        ``gated`` windows come after ``checks`` and count the call only while ``gate``
        holds (read in the same script). Raises ``Unavailable`` when Redis cannot be
        reached."""
        counting = _Counting(checks, window_s, gated=gated, gate=gate)
        async with redis_translated():
            refused, wait_us = await self._all(keys=self._keys(counting), args=counting.args())
        return _first_refusal(counting.windows(), refused, wait_us)

    async def allow_all_reading(
        self,
        checks: Sequence[Rate],
        window_s: float,
        reads: Sequence[Command],
        *,
        gated: Sequence[Rate] = (),
        gate: Gate | None = None,
    ) -> tuple[tuple[str, Decision] | None, list[object]]:
        """``allow_all``, and the replies to ``reads`` (plain read commands) sent in the
        same round trip, as Redis gave them (``HGETALL`` a flat list; see ``Wire``); a
        reply may be an exception. Raises ``Unavailable`` when Redis cannot be reached.
        The requests that count at about the same time share one round trip
        (``Coalesced``): every authenticated request asks this first."""
        counting = _Counting(checks, window_s, reads, gated, gate)
        counted, rest = await self._counting(counting)
        if isinstance(counted, NoScriptError):  # Redis restarted or flushed its scripts
            return await self.allow_all(checks, window_s, gated=gated, gate=gate), rest
        if isinstance(counted, Exception):
            raise counted
        refused, wait_us = cast(list[object], counted)
        return _first_refusal(counting.windows(), refused, wait_us), rest

    def _keys(self, counting: _Counting) -> list[str]:
        """The script's KEYS: the windows, then the gate's hash if any window is gated."""
        keys = [self.key(k) for k, _ in counting.windows()]
        return [*keys, counting.gate.key] if counting.gated and counting.gate else keys

    async def _count_all(self, batch: list[_Counting]) -> list[tuple[object, list[object]]]:
        """One round trip for the windows and reads of every request in ``batch``. A
        request whose commands cannot be sent (a key no command can carry) is answered
        its error alone: the others' go on."""
        parts: list[bytes] = []
        sent: list[int | Exception] = []  # per request: its commands' count, or why none
        for counting in batch:
            keys = self._keys(counting)
            counted = ("EVALSHA", self._all.sha, len(keys), *keys, *counting.args())
            try:
                parts.append(packed([counted, *counting.reads]))
            except (UnicodeEncodeError, TypeError) as exc:
                sent.append(exc)
                continue
            sent.append(1 + len(counting.reads))
        count = sum(n for n in sent if isinstance(n, int))
        replies: list[object] = []
        if count:
            async with redis_translated():
                replies = await self._wire.execute_packed(b"".join(parts), count)
        answers: list[tuple[object, list[object]]] = []
        at = 0
        for n in sent:
            if isinstance(n, Exception):
                answers.append((n, []))
                continue
            answers.append((replies[at], replies[at + 1 : at + n]))
            at += n
        return answers


@dataclass(frozen=True, slots=True)
class _Counting:
    """One request's windows (``checks``, then ``gated`` behind ``gate``) and the reads
    sent with them."""

    checks: Sequence[Rate]
    window_s: float
    reads: Sequence[Command] = ()
    gated: Sequence[Rate] = ()
    gate: Gate | None = None

    def __post_init__(self) -> None:
        if self.window_s <= 0 or any(limit < 1 for _, limit in self.windows()):
            raise ValueError("a rate needs limit >= 1 and window_s > 0")
        if self.gated and self.gate is None:
            raise ValueError("gated windows need a gate")

    def windows(self) -> list[Rate]:
        return [*self.checks, *self.gated]

    def args(self) -> list[int | str]:
        """The script's ARGV (see ``_ALLOW_ALL``)."""
        field, value = (self.gate.field, self.gate.value) if self.gate else ("", "")
        window_us = max(1, round(self.window_s * 1_000_000))
        args: list[int | str] = [window_us, len(self.checks), field, value]
        for _, limit in self.windows():
            args += [limit, secrets.token_hex(8)]
        return args


def _first_refusal(
    checks: Sequence[Rate], refused: object, wait_us: object
) -> tuple[str, Decision] | None:
    if not int(str(refused)):
        return None
    seconds = max(1, math.ceil(int(str(wait_us)) / 1_000_000))
    return checks[int(str(refused)) - 1][0], Decision(False, seconds)


class LocalLimiter:
    """``limit`` calls per ``window_s`` per key, as token buckets in this process: a key
    starts with ``limit`` tokens and gets them back at ``limit / window_s`` a second.

    Approximate on purpose: each process keeps its own buckets (a client whose requests
    are spread over N processes may get up to N times the limit), and past ``max_keys``
    keys the least recently seen one is forgotten (it starts again with a full bucket), so
    memory stays bounded whatever addresses arrive."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("a rate needs limit >= 1, window_s > 0 and max_keys >= 1")
        self.limit = limit
        self._per_s = limit / window_s
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, at]

    def allow(self, key: str) -> Decision:
        bucket = self._refilled(key)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return Decision(True, 0, int(bucket[0]))
        return Decision(False, max(1, math.ceil((1.0 - bucket[0]) / self._per_s)))

    def take(self, key: str) -> bool:
        """``allow``'s verdict alone, for a path that has no use for the rest of the
        ``Decision`` (the hot reads, which leave a refusal to the stack to answer)."""
        bucket = self._refilled(key)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False

    def _refilled(self, key: str) -> list[float]:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = [float(self.limit), now]
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(self.limit), bucket[0] + (now - bucket[1]) * self._per_s)
            bucket[1] = now
        return bucket


class Throttle:
    """One fixed rate (``limit`` calls per ``window_s``) on one limiter key."""

    def __init__(
        self, limiter: SlidingWindowLimiter, key: str, limit: int, window_s: float
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate needs limit >= 1 and window_s > 0")
        self.limiter = limiter
        self.key = key
        self.limit = limit
        self.window_s = window_s

    async def take(self) -> Decision:
        return await self.limiter.allow(self.key, self.limit, self.window_s)


@asynccontextmanager
async def redis_translated() -> AsyncIterator[None]:
    """Redis connection trouble becomes ``Unavailable``; script errors stay bugs."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unavailable("redis is not reachable") from exc
