"""One replay of a projector at a time: a lease in Redis (``<prefix>:replay-lease:<name>``)
that names its holder, taken with SET NX, renewed while the replay runs and released at its
end. A replay that dies without releasing it holds it for one TTL at most, and not at all
against a replay on its own host, which sees that its process is gone (killed and run
again, a replay resumes at once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

LEASE_TTL_S = 30.0

# Compare-and-act: only the holder renews (or retakes an expired lease) and releases, so a
# replay whose lease ran out never extends or deletes another replay's.
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not held then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0 end
return 0
"""
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1 or 0
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(prefix: str, projector: str) -> str:
    return f"{prefix}:replay-lease:{projector}"


def this_holder() -> bytes:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    # The token tells two replays of one process apart (a test's, a library caller's).
    held = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
    return json.dumps({**held, "token": secrets.token_hex(8)}).encode()


def shown_holder(value: bytes | str) -> str:
    """Who holds a lease, in words an operator can act on."""
    try:
        h = json.loads(value)
        return f"pid {h['pid']} on {h['host']}, since {h['since']}"
    except (ValueError, TypeError, KeyError):
        return "another replay"


def gone(value: bytes | str) -> bool:
    """Whether the holder was a process on this host that no longer runs."""
    try:
        h = json.loads(value)
        if h["host"] != socket.gethostname():
            return False
        os.kill(int(h["pid"]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, TypeError, KeyError, OSError):
        return False
    return False


async def lease_holder(redis: Redis, prefix: str, projector: str) -> str | None:
    """Who holds the lease on ``projector``'s replay, if a live process does."""
    held = await redis.get(lease_key(prefix, projector))
    return None if held is None or gone(held) else shown_holder(held)


class ReplayLeases:
    """The leases of the projectors one replay builds."""

    def __init__(
        self, redis: Redis, prefix: str, names: Sequence[str], *, ttl_s: float = LEASE_TTL_S
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._names = list(dict.fromkeys(names))
        self._ttl_ms = int(ttl_s * 1000)
        self._value = this_holder()
        self.holder = shown_holder(self._value)
        self._taken: list[str] = []
        self.lost: str | None = None  # a projector whose lease another replay took

    async def take(self) -> tuple[str, str] | None:
        """Every lease, or none: the (projector, holder) of the first one held elsewhere."""
        for name in self._names:
            key = lease_key(self._prefix, name)
            if await self._claim(key):
                self._taken.append(name)
                continue
            held = await self._redis.get(key)
            await self.release()
            return name, shown_holder(held) if held is not None else "another replay"
        return None

    async def _claim(self, key: str) -> bool:
        if await self._redis.set(key, self._value, nx=True, px=self._ttl_ms):
            return True
        held = await self._redis.get(key)
        if held is None or not gone(held):
            return False
        log.warning("replay.lease_taken_over", key=key, holder=shown_holder(held))
        return bool(await self._redis.eval(_TAKE_OVER, 1, key, held, self._value, self._ttl_ms))

    async def renew(self) -> None:
        for name in self._taken:
            key = lease_key(self._prefix, name)
            if not await self._redis.eval(_RENEW, 1, key, self._value, self._ttl_ms):
                self.lost = name

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew every third of the TTL until ``stop``; a Redis hiccup is retried next beat."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._ttl_ms / 3000)
            if stop.is_set():
                return
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                log.warning("replay.lease_renew_failed", error=repr(exc))

    async def release(self) -> None:
        taken, self._taken = self._taken, []
        for name in taken:
            key = lease_key(self._prefix, name)
            await self._redis.eval(_RELEASE, 1, key, self._value)
