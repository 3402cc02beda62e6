"""The sliding-window limiter's gated windows on the real Redis: a window behind a gate
counts a call only while the hash it names holds the value (a user's window, only while
the session of the call is live)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bloghub.adapters.redis.wire import Wire
from bloghub.auth.limiter import Gate, SlidingWindowLimiter
from bloghub.settings import Settings


@pytest.fixture
async def limiter(redis: Redis, settings: Settings) -> AsyncIterator[SlidingWindowLimiter]:
    wire = Wire(settings.redis_url.get_secret_value())
    yield SlidingWindowLimiter(redis, settings.prefix, wire=wire)
    await wire.close()


@pytest.fixture
async def session(redis: Redis, settings: Settings) -> Gate:
    """A live session of a user, as the session store writes it."""
    gate = Gate(f"{settings.prefix}:session:{secrets.token_hex(6)}", "user", secrets.token_hex(6))
    await redis.hset(gate.key, "user", gate.value)
    return gate


def keys() -> tuple[str, str]:
    return f"ip:{secrets.token_hex(4)}", f"user:{secrets.token_hex(4)}"


async def test_a_closed_gate_counts_only_the_ungated_windows(
    limiter: SlidingWindowLimiter, redis: Redis, session: Gate
) -> None:
    ip, user = keys()
    await redis.delete(session.key)  # the session ended
    for _ in range(5):
        refused = await limiter.allow_all([(ip, 10)], 60, gated=[(user, 2)], gate=session)
        assert refused is None
    assert await redis.zcard(limiter.key(ip)) == 5
    assert await redis.zcard(limiter.key(user)) == 0


async def test_an_open_gate_counts_and_refuses_the_gated_windows(
    limiter: SlidingWindowLimiter, redis: Redis, session: Gate
) -> None:
    ip, user = keys()
    decisions = [
        await limiter.allow_all([(ip, 10)], 60, gated=[(user, 2)], gate=session) for _ in range(3)
    ]
    assert decisions[:2] == [None, None]
    assert decisions[2] is not None
    assert decisions[2][0] == user
    assert 1 <= decisions[2][1].retry_after_s <= 60


async def test_a_gate_holding_another_value_is_closed(
    limiter: SlidingWindowLimiter, redis: Redis, session: Gate
) -> None:
    ip, user = keys()
    someone_else = Gate(session.key, session.field, "another-user")
    assert await limiter.allow_all([(ip, 10)], 60, gated=[(user, 1)], gate=someone_else) is None
    assert await redis.zcard(limiter.key(user)) == 0


async def test_counting_with_reads_honours_the_gate(
    limiter: SlidingWindowLimiter, redis: Redis, session: Gate
) -> None:
    ip, user = keys()
    reads = [("HGET", session.key, "user")]
    refused, (owner,) = await limiter.allow_all_reading(
        [(ip, 10)], 60, reads, gated=[(user, 1)], gate=session
    )
    assert refused is None
    assert owner == session.value.encode()
    refused, _ = await limiter.allow_all_reading(
        [(ip, 10)], 60, reads, gated=[(user, 1)], gate=session
    )
    assert refused is not None
    assert refused[0] == user
    await redis.delete(session.key)
    refused, (owner,) = await limiter.allow_all_reading(
        [(ip, 10)], 60, reads, gated=[(user, 1)], gate=session
    )
    assert refused is None
    assert owner is None
    assert await redis.zcard(limiter.key(user)) == 1


async def test_gated_windows_need_a_gate(limiter: SlidingWindowLimiter) -> None:
    ip, user = keys()
    with pytest.raises(ValueError, match="gate"):
        await limiter.allow_all([(ip, 10)], 60, gated=[(user, 1)])


async def test_a_request_whose_key_cannot_be_sent_fails_alone(
    limiter: SlidingWindowLimiter, redis: Redis, session: Gate
) -> None:
    """Requests counted at once share one round trip: one with a key no command can carry
    (a lone surrogate, which UTF-8 cannot encode) is answered its error, and the others
    are counted and read as if it had not come."""
    ip, _ = keys()
    reads = [("HGET", session.key, "user")]
    good = [limiter.allow_all_reading([(ip, 10)], 60, reads) for _ in range(3)]
    bad = limiter.allow_all_reading([(ip + "\ud800", 10)], 60, reads)
    *answers, failed = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(failed, UnicodeEncodeError)
    assert answers == [(None, [session.value.encode()])] * 3
    assert await redis.zcard(limiter.key(ip)) == 3
