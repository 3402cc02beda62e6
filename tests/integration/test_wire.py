"""The hot paths' Redis connection (adapters/redis/wire.py) against real Redis servers: the
replies redis-py gives, in each caller's place however callers interleave or give up, and
what a server that goes away, hangs, or wants a password does to it."""

from __future__ import annotations

import asyncio
import random
import secrets
import socket

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.reach import HOLD_S
from bloghub.adapters.redis.wire import (
    KEEPALIVE_IDLE_S,
    KEEPALIVE_INTERVAL_S,
    KEEPALIVE_PROBES,
    Wire,
)
from bloghub.settings import Settings
from tests.private_redis import private_redis


async def test_replies_are_redis_pys_raw_replies_errors_in_their_place(settings: Settings) -> None:
    url = settings.redis_url.get_secret_value()
    wire, redis = Wire(url), make_redis(url)
    key = f"{settings.prefix}:wire:{secrets.token_hex(4)}"
    try:
        replies = await wire.execute(
            [
                ("SET", key + ":s", "välue ✓"),
                ("GET", key + ":s"),
                ("HSET", key + ":h", "a", 1, "b", "2"),
                ("HGETALL", key + ":h"),
                ("INCRBY", key + ":n", 41),
                ("INCR", key + ":s"),  # not an integer: an error reply, in its place
                ("GET", key + ":missing"),
                ("EVAL", "return {1, 'two', KEYS[1]}", 1, key),
            ]
        )
        assert replies[:5] == [b"OK", "välue ✓".encode(), 2, [b"a", b"1", b"b", b"2"], 41]
        assert isinstance(replies[5], ResponseError)
        assert "not an integer" in str(replies[5])
        assert replies[6] is None
        assert replies[7] == [1, b"two", key.encode()]
        # What redis-py reads back is what the wire wrote, and the other way round.
        assert await redis.hgetall(key + ":h") == {b"a": b"1", b"b": b"2"}
        assert await wire.execute([("GET", key + ":n")]) == [b"41"]
        assert await wire.execute([]) == []
    finally:
        await redis.delete(key + ":s", key + ":h", key + ":n")
        await redis.aclose()
        await wire.close()


async def test_an_unknown_script_is_a_no_script_error(settings: Settings) -> None:
    wire = Wire(settings.redis_url.get_secret_value())
    try:
        (reply,) = await wire.execute([("EVALSHA", "0" * 40, 0)])
        assert isinstance(reply, NoScriptError)
    finally:
        await wire.close()


async def test_interleaved_and_cancelled_callers_each_get_their_own_replies(
    settings: Settings,
) -> None:
    wire = Wire(settings.redis_url.get_secret_value())
    rng = random.Random(11)

    async def echo(tokens: list[str]) -> tuple[list[str], list[object]]:
        return tokens, await wire.execute([("ECHO", t) for t in tokens])

    try:
        calls = [
            asyncio.ensure_future(echo([secrets.token_hex(4) for _ in range(rng.randint(1, 5))]))
            for _ in range(300)
        ]
        await asyncio.sleep(0)
        given_up = set(rng.sample(range(len(calls)), 60))
        for i in given_up:
            calls[i].cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        answered = [d for i, d in enumerate(done) if i not in given_up]
        assert len(answered) == 240
        for outcome in answered:
            assert not isinstance(outcome, BaseException), outcome
            tokens, replies = outcome
            assert replies == [t.encode() for t in tokens]
        # The connection is still in step after the callers that gave up.
        assert await wire.execute([("ECHO", "after")]) == [b"after"]
    finally:
        await wire.close()


async def test_a_server_that_goes_away_fails_the_call_and_the_next_connects_again() -> None:
    async with private_redis() as server:
        wire = Wire(server.url, timeout_s=2.0, connect_timeout_s=1.0)
        try:
            assert await wire.execute([("SET", "k", "v")]) == [b"OK"]
            await server.stop()
            with pytest.raises(RedisConnectionError):
                await wire.execute([("GET", "k")])
            await server.start()
            # The refused connect held the server out of reach for a moment
            # (adapters/redis/reach.py); past it, the next call connects again.
            await asyncio.sleep(HOLD_S)
            assert await wire.execute([("SET", "k", "w"), ("GET", "k")]) == [b"OK", b"w"]
        finally:
            await wire.close()


async def test_a_call_without_reply_in_time_times_out_and_the_next_is_in_step() -> None:
    async with private_redis() as server:
        wire = Wire(f"{server.url}?socket_timeout=0.3")  # the URL's timeout, as redis-py's
        try:
            with pytest.raises(RedisTimeoutError):
                await wire.execute([("BLPOP", "nothing-here", 2)])
            # The late reply of the BLPOP never reaches this call: a new connection, once
            # the timeout's hold on the server has passed.
            await asyncio.sleep(HOLD_S)
            assert await wire.execute([("ECHO", "next")]) == [b"next"]
        finally:
            await wire.close()


async def test_the_password_and_database_of_the_url_are_used() -> None:
    async with private_redis() as server:
        admin = server.client()
        try:
            await admin.config_set("requirepass", "s3cret")
            base = f"127.0.0.1:{server.port}"
            wire = Wire(f"redis://:s3cret@{base}/3")
            try:
                assert await wire.execute([("SET", "in-db-3", "yes")]) == [b"OK"]
            finally:
                await wire.close()
            on_three = make_redis(f"redis://:s3cret@{base}/3")
            assert await on_three.get("in-db-3") == b"yes"
            await on_three.aclose()
            wrong = Wire(f"redis://:nope@{base}/0")
            with pytest.raises(RedisConnectionError, match="refused"):
                await wrong.execute([("PING",)])
            await wrong.close()
        finally:
            await admin.aclose()


def test_on_uvloop_as_the_api_serves(settings: Settings) -> None:
    """uvloop's transports are not asyncio's classes; the wire works on both loops."""

    async def scenario() -> list[object]:
        wire = Wire(settings.redis_url.get_secret_value())
        try:
            key = f"{settings.prefix}:wire:uv:{secrets.token_hex(4)}"
            return await wire.execute([("SET", key, "1", "EX", 10), ("GET", key), ("DEL", key)])
        finally:
            await wire.close()

    assert uvloop.run(scenario()) == [b"OK", b"1", 1]


def test_url_options_are_honoured_or_refused_at_start() -> None:
    # TLS as redis-py reads it from the URL; an option the wire would ignore is refused.
    Wire("rediss://redis.example:6380/0?ssl_cert_reqs=none&socket_timeout=3")
    Wire("rediss://redis.example:6380/0?ssl_cert_reqs=required")
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        Wire("rediss://redis.example:6380/0?ssl_cert_reqs=sometimes")
    with pytest.raises(ValueError, match="health_check_interval"):
        Wire("redis://127.0.0.1:6379/0?health_check_interval=5")


def test_connections_are_kept_alive_while_idle(settings: Settings) -> None:
    """TCP keepalive with the wire's timings, on asyncio's loop and on uvloop, so an idle
    connection through a firewall that forgets idle flows is probed, not silently lost."""

    async def options() -> tuple[int, int, int, int]:
        wire = Wire(settings.redis_url.get_secret_value())
        try:
            assert await wire.execute([("PING",)]) == [b"PONG"]
            connection = wire._connection  # the socket is not otherwise exposed
            assert connection is not None
            assert connection._transport is not None
            sock = connection._transport.get_extra_info("socket")
            return (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            )
        finally:
            await wire.close()

    expected = (1, KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES)
    assert asyncio.run(options()) == expected
    assert uvloop.run(options()) == expected
