"""The Redis sink's batch script reads numbers as Redis does: a batch with an increment or
a score that Redis would refuse partway (and the checkpoint then not moved, so every retry
would count the writes before it again) is refused whole before anything is written, and
a valid batch after it applies exactly once."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bloghub.adapters.redis.batch_script import BatchScript, Write
from bloghub.events.base import Recorded
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import UserRegistered
from bloghub.projections.redis_sink import RedisProjector
from bloghub.settings import Settings
from tests.integration.test_sinks import registration
from tests.support import against_the_store

MAX = 2**63 - 1
MIN = -(2**63)


class Tally(RedisProjector):
    """Counts registrations per domain, by a step of the test's choosing."""

    name = "tally"
    families: tuple[Family, ...] = (Family.USERS,)
    step: str = "1"

    def writes(self, records: Sequence[Recorded]) -> list[Write]:
        return [
            Write("HINCRBY", self.key("domains"), (rec.event.email.rsplit("@", 1)[1], self.step))
            for rec in records
            if isinstance(rec.event, UserRegistered) and rec.event.email is not None
        ]


async def test_a_non_integer_increment_refuses_the_whole_batch(
    redis: Redis, settings: Settings
) -> None:
    tally = Tally(redis, prefix=f"{settings.prefix}-{secrets.token_hex(3)}")
    topic = topic_for(settings.prefix, Family.USERS)
    first = [registration(f"u{i}@a.example", i, topic) for i in range(3)]
    assert len(await tally.apply(first, {(topic, 0): 3})) == 3

    class Halves(Tally):
        """A projector bug: one increment of the batch is not an integer."""

        def writes(self, records: Sequence[Recorded]) -> list[Write]:
            out = super().writes(records)
            return [*out[:-1], Write("HINCRBY", out[-1].key, (out[-1].args[0], "0.5"))]

    halves = Halves(redis, prefix=tally.keyspace.rsplit(":", 2)[0])
    second = [registration(f"v{i}@a.example", 3 + i, topic) for i in range(3)]
    for _ in range(3):  # as the runner retries it: nothing lands, however often
        with pytest.raises(ResponseError, match=r"0\.5 is not a 64-bit integer"):
            await halves.apply(second, {(topic, 0): 6})
    assert await redis.hgetall(tally.key("domains")) == {b"a.example": b"3"}
    assert await tally.load_checkpoints([(topic, 0)]) == {(topic, 0): 3}

    # The batch as it should be applies once, and a re-delivery of it changes nothing.
    assert len(await tally.apply(second, {(topic, 0): 6})) == 3
    assert len(await tally.apply(second, {(topic, 0): 6})) == 0
    assert await redis.hgetall(tally.key("domains")) == {b"a.example": b"6"}
    assert await tally.load_checkpoints([(topic, 0)]) == {(topic, 0): 6}


@pytest.mark.parametrize(
    "bad", ["0.5", "1e3", " 7", "7 ", "+7", "0x10", "007", "-0", "", "1_000", str(MAX + 1)]
)
async def test_increments_redis_would_refuse_are_refused_before_any_write(
    redis: Redis, settings: Settings, bad: str
) -> None:
    script, checkpoints, key = await _fresh(redis, settings)
    writes = [
        Write("HINCRBY", f"{key}:h", ("f", 1)),
        Write("INCRBY", f"{key}:s", (1,)),
        Write("SADD", f"{key}:set", ("m",)),
        Write("INCRBY", f"{key}:n", (bad,)),
    ]
    with pytest.raises(ResponseError, match="is not a 64-bit integer"):
        await script.run(checkpoints, {"p|0": None}, {"p|0": 4}, writes)
    assert await redis.keys(f"{key}*") == []


async def test_an_increment_of_a_value_that_is_no_integer_is_refused(
    redis: Redis, settings: Settings
) -> None:
    script, checkpoints, key = await _fresh(redis, settings)
    await redis.hset(f"{key}:h", "f", "1.5")
    await redis.set(f"{key}:s", "12 ")
    for w in (Write("HINCRBY", f"{key}:h", ("f", 1)), Write("INCRBY", f"{key}:s", (1,))):
        with pytest.raises(ResponseError, match="the value there is not an integer"):
            await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, [Write("SET", key, ("x",)), w])
    # Nor may the batch's own earlier write leave one there.
    own = [Write("HSET", f"{key}:g", ("f", "ten")), Write("HINCRBY", f"{key}:g", ("f", 1))]
    with pytest.raises(ResponseError, match="the value there is not an integer"):
        await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, own)
    assert not await redis.exists(key, f"{key}:g", checkpoints)
    # What the batch itself clears or sets to an integer first is fine.
    fixed = [
        Write("DEL", f"{key}:h"),
        Write("HINCRBY", f"{key}:h", ("f", 2)),
        Write("SET", f"{key}:s", ("40",)),
        Write("INCRBY", f"{key}:s", (2,)),
    ]
    assert await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, fixed)
    assert await redis.hget(f"{key}:h", "f") == b"2"
    assert await redis.get(f"{key}:s") == b"42"


async def test_a_sum_past_64_bits_is_refused_whole(redis: Redis, settings: Settings) -> None:
    script, checkpoints, key = await _fresh(redis, settings)
    await redis.hset(f"{key}:h", "f", MAX - 10)
    await redis.set(f"{key}:s", MIN + 10)
    over = [Write("HINCRBY", f"{key}:h", ("f", 6)), Write("HINCRBY", f"{key}:h", ("f", 5))]
    under = [Write("INCRBY", f"{key}:s", (-10,)), Write("INCRBY", f"{key}:s", (-1,))]
    for writes in (over, under):
        with pytest.raises(ResponseError, match="the sum would pass the 64-bit range"):
            await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, writes)
    assert await redis.hget(f"{key}:h", "f") == str(MAX - 10).encode()
    assert await redis.get(f"{key}:s") == str(MIN + 10).encode()
    # Up to the very ends is fine.
    edges = [over[0], Write("HINCRBY", f"{key}:h", ("f", 4)), under[0]]
    assert await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, edges)
    assert await redis.hget(f"{key}:h", "f") == str(MAX).encode()
    assert await redis.get(f"{key}:s") == str(MIN).encode()


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", " 1", "1e400", "1e-400", "0x1p3", "."])
async def test_scores_that_are_not_finite_numbers_are_refused(
    redis: Redis, settings: Settings, bad: str
) -> None:
    script, checkpoints, key = await _fresh(redis, settings)
    writes = [Write("ZADD", f"{key}:z", (1, "a")), Write("ZINCRBY", f"{key}:z", (bad, "a"))]
    with pytest.raises(ResponseError, match="is not a finite number"):
        await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, writes)
    assert await redis.keys(f"{key}*") == []


async def test_scores_as_python_writes_them_are_taken(redis: Redis, settings: Settings) -> None:
    script, checkpoints, key = await _fresh(redis, settings)
    scores: list[float | int | str] = [1e-05, 1.5e16, -0.0, 2, "3.", ".5", "+1E2"]
    writes = [Write("ZADD", f"{key}:z", (s, f"m{i}")) for i, s in enumerate(scores)]
    assert await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, writes)
    assert await redis.zcard(f"{key}:z") == len(scores)


VALUES = st.one_of(
    st.none(),
    st.integers(MIN, MAX).map(str),
    st.sampled_from([str(MAX), str(MIN), "0", "-0", "1.0", "abc", "", " 1", "01"]),
)
STEPS = st.one_of(
    st.integers(MIN - 2, MAX + 2).map(str),
    st.integers(-20, 20).map(str),
    st.sampled_from(["0.5", "1e2", "+1", "-", "٣", "1 "]),
)


@against_the_store(150)
@given(now=VALUES, step=STEPS)
async def test_the_script_takes_an_increment_exactly_when_redis_does(
    redis: Redis, settings: Settings, now: str | None, step: str
) -> None:
    """Whatever the value and the step, the script's answer is Redis's own: it applies
    what HINCRBY applies, and refuses (writing nothing) what HINCRBY would fail on."""
    script, checkpoints, key = await _fresh(redis, settings)
    if now is not None:
        await redis.hset(f"{key}:h", "f", now)
        await redis.hset(f"{key}:mirror", "f", now)
    try:
        # The step goes as the string it is: how Redis reads it is what is compared.
        answer = await redis.hincrby(f"{key}:mirror", "f", step)  # type: ignore[arg-type]
        expected: bytes | None = str(answer).encode()
    except ResponseError:
        expected = None
    writes = [Write("SET", f"{key}:s", ("x",)), Write("HINCRBY", f"{key}:h", ("f", step))]
    if expected is None:
        with pytest.raises(ResponseError):
            await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, writes)
        assert not await redis.exists(f"{key}:s", checkpoints)
        assert await redis.hget(f"{key}:h", "f") == (None if now is None else now.encode())
    else:
        assert await script.run(checkpoints, {"p|0": None}, {"p|0": 1}, writes)
        assert await redis.hget(f"{key}:h", "f") == expected
    await redis.delete(f"{key}:h", f"{key}:mirror", f"{key}:s", checkpoints)


async def _fresh(redis: Redis, settings: Settings) -> tuple[BatchScript, str, str]:
    """The script, a checkpoint hash and a key prefix no other test writes."""
    key = f"{settings.prefix}:numbers:{secrets.token_hex(4)}"
    return BatchScript(redis), f"{key}-checkpoints", key
