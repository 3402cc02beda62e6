"""The clients bloghub makes for Redis (redis-py's through ``make_redis``, and the hot
paths' wire) against a server that hangs or restarts: a call to a hung server fails
within its timeout and is not sent again; after it, calls to that server from either
client fail at once for a moment (adapters/redis/reach.py); a restarted server is not
held out of reach."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.reach import HOLD_S, reach_of
from bloghub.adapters.redis.wire import Wire
from tests.private_redis import private_redis

SOCKET_TIMEOUT_S = 2.0


async def test_a_hung_server_costs_one_timeout_then_is_held_and_runs_a_call_once() -> None:
    async with private_redis() as server:
        redis, wire = make_redis(server.url), Wire(server.url)
        try:
            assert await redis.incr("n") == 1
            assert await wire.execute([("PING",)]) == [b"PONG"]
            server.pause()
            try:
                started = time.monotonic()
                with pytest.raises(RedisTimeoutError):
                    await redis.incr("n")
                timed_out = time.monotonic() - started
                # Held: neither client waits on the server again for a while.
                started = time.monotonic()
                with pytest.raises(RedisConnectionError, match="out of reach"):
                    await redis.incr("n")
                with pytest.raises(RedisConnectionError, match="out of reach"):
                    await wire.execute([("INCR", "n")])
                held = time.monotonic() - started
            finally:
                server.resume()
            assert SOCKET_TIMEOUT_S <= timed_out < 2 * SOCKET_TIMEOUT_S, timed_out
            assert held < 0.5, held
            # The server, awake, ran what it was sent while hung: the one increment that
            # timed out, and nothing again (its caller was told it failed).
            await asyncio.sleep(HOLD_S)
            assert await redis.get("n") == b"2"
            assert await wire.execute([("GET", "n")]) == [b"2"]
        finally:
            await redis.aclose()
            await wire.close()


async def test_a_restarted_server_is_not_held_out_of_reach() -> None:
    async with private_redis() as server:
        redis = make_redis(server.url)
        try:
            assert await redis.set("k", "v")
            await server.stop()
            await server.start()
            # The pooled connection is found broken (at most this call fails); the next
            # connects again at once, not held back.
            with contextlib.suppress(RedisConnectionError):
                await redis.set("k", "w")
            assert not reach_of(f"127.0.0.1:{server.port}").held
            assert await redis.set("k", "x")
            assert await redis.get("k") == b"x"
        finally:
            await redis.aclose()


@pytest.mark.parametrize("answers", ["replies", "error replies"])
async def test_a_slow_call_to_a_server_answering_others_fails_alone(answers: str) -> None:
    async with private_redis() as server:
        redis, wire = make_redis(server.url), Wire(f"{server.url}?socket_timeout=0.5")
        try:
            assert await wire.execute([("PING",)]) == [b"PONG"]
            await redis.hset("a-hash", "f", "v")

            async def answered_meanwhile() -> None:
                for _ in range(8):
                    if answers == "replies":
                        assert await redis.ping()
                    else:  # an error reply is a reply: the server is there
                        with pytest.raises(ResponseError, match="WRONGTYPE"):
                            await redis.get("a-hash")
                    await asyncio.sleep(0.1)

            # A blocking pop outlasts the wire's timeout while the server answers others.
            others = asyncio.create_task(answered_meanwhile())
            with pytest.raises(RedisTimeoutError):
                await wire.execute([("BLPOP", "nothing-here", 5)])
            await others
            # Up, and answering: not held, the next call goes through at once.
            assert not reach_of(f"127.0.0.1:{server.port}").held
            assert await wire.execute([("ECHO", "next")]) == [b"next"]
        finally:
            await redis.aclose()
            await wire.close()
