"""The redis-py client bloghub makes (``make_redis``) against a server that hangs: each
call fails within its timeout, the next one on a new connection too, and none is sent
again behind its caller's back."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.adapters.redis import make_redis
from tests.private_redis import private_redis

SOCKET_TIMEOUT_S = 2.0


async def _failing_in(redis: Redis) -> float:
    """How long an increment took to fail."""
    started = time.monotonic()
    with pytest.raises((RedisTimeoutError, RedisConnectionError)):
        await redis.incr("n")
    return time.monotonic() - started


async def test_a_hung_server_fails_each_call_within_one_timeout_and_runs_it_once() -> None:
    async with private_redis() as server:
        redis = make_redis(server.url)
        try:
            assert await redis.incr("n") == 1
            server.pause()
            try:
                # The first waits on the connection it has; the second, that connection
                # being dropped with the first's timeout, on a new one the server accepts
                # (the kernel does) but never greets.
                waits = [await _failing_in(redis), await _failing_in(redis)]
            finally:
                server.resume()
            # One timeout each, not one per retry: a hung server must not hold every
            # request that touches it for many timeouts before it is told so.
            assert all(w < 2 * SOCKET_TIMEOUT_S for w in waits), waits
            # The server, awake again, runs what it was sent while hung, and nothing was
            # sent again: an increment sent again after its caller was told it failed
            # would count twice.
            assert await redis.get("n") in (b"2", b"3")
            sent = await redis.info("commandstats")
            assert sent["cmdstat_incrby"]["calls"] <= 3, sent["cmdstat_incrby"]
        finally:
            await redis.aclose()
