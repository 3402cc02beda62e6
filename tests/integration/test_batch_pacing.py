"""A busy lane applies a steady stream in few, large batches (one per ``batch_interval_ms``),
while a record after a quiet spell is applied at once; every event still counts once. A
runner behind the log asks the broker to hold its fetches only briefly, and for the
configured time again once it has caught up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence

import pytest
from redis.asyncio import Redis

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.batch_script import Write
from bloghub.events.base import Recorded, registry
from bloghub.events.log import EventLog
from bloghub.events.topics import Family
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.port import TP
from bloghub.projections.redis_sink import RedisProjector
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.settings import Settings
from tests.support import append_registrations, wait_until


class Signups(RedisProjector):
    """Counts registrations, and notes how many each applied batch held."""

    name = "signups_paced"
    families: tuple[Family, ...] = (Family.USERS,)

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        super().__init__(redis, prefix=prefix)
        self.batches: list[int] = []
        # The runner's fetch hold when each batch was applied (once a runner is given).
        self.runner: ProjectorRunner | None = None
        self.holds: list[int] = []

    def writes(self, records: Sequence[Recorded]) -> list[Write]:
        return [Write("HINCRBY", self.key("signups"), ("all", len(records)))] if records else []

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        self.batches.append(len(records))
        if self.runner is not None:
            self.holds.append(self.runner.fetch_wait_ms)
        return await super().apply(records, next_offsets)

    async def counted(self, redis: Redis) -> int:
        return int(await redis.hget(self.key("signups"), "all") or 0)


class Rig:
    def __init__(
        self, redis: Redis, settings: Settings, prefix: str, log: EventLog, dead: DeadLetters
    ) -> None:
        self.redis, self.settings, self.prefix, self.log = redis, settings, prefix, log
        self.dead = dead

    async def running(
        self, interval_ms: int, *, batch_max_events: int = 2000
    ) -> tuple[Signups, asyncio.Event, asyncio.Task[None]]:
        projector = Signups(self.redis, prefix=self.prefix)
        dead = self.dead
        config = RunnerConfig(
            bootstrap=self.settings.kafka_bootstrap,
            prefix=self.prefix,
            batch_max_events=batch_max_events,
            batch_interval_ms=interval_ms,
            apply_concurrency=1,
            fetch_max_wait_ms=500,
            fetch_behind_wait_ms=20,
        )
        runner = ProjectorRunner(projector, config=config, registry=registry, dead_letters=dead)
        projector.runner = runner
        stop = asyncio.Event()
        return projector, stop, asyncio.create_task(runner.run(stop))


@pytest.fixture
async def rig(settings: Settings) -> AsyncIterator[Rig]:
    redis = make_redis(settings.redis_url.get_secret_value())
    prefix = f"{settings.prefix}-p{secrets.token_hex(2)}"
    await ensure_topics(settings.kafka_bootstrap, prefix, partitions=1, replication=1)
    log = EventLog(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, registry=registry, timeout_s=10
    )
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=prefix, redis=redis)
    await log.start()
    await dead.start()
    try:
        yield Rig(redis, settings, prefix, log, dead)
    finally:
        await dead.close()
        await log.close()
        await redis.aclose()
        await delete_topics(settings.kafka_bootstrap, prefix)


async def _at_least(rig: Rig, projector: Signups, n: int) -> bool:
    return await projector.counted(rig.redis) >= n


async def _stopped(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=30)


async def test_a_steady_stream_is_applied_in_one_batch_per_interval(rig: Rig) -> None:
    projector, stop, task = await rig.running(interval_ms=400)
    try:
        # Once the runner has joined and applied a first event, the stream starts.
        await append_registrations(rig.log, 1, tag="first")
        await wait_until(lambda: _at_least(rig, projector, 1), timeout_s=30)
        projector.batches.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        # One event per append, each waiting for the broker, a few ms apart: a stream
        # lasting several intervals, not a backlog.
        for i in range(240):
            await append_registrations(rig.log, 1, tag=f"steady{i}")
            await asyncio.sleep(0.005)
        streamed_s = loop.time() - started

        await wait_until(lambda: _at_least(rig, projector, 241), timeout_s=30)
    finally:
        await _stopped(stop, task)
    assert await projector.counted(rig.redis) == 241
    applied = [n for n in projector.batches if n]
    # At most one batch per interval while the stream lasted, and the one or two that
    # were waiting when it ended: far fewer than the events (one apply each, unpaced).
    assert len(applied) <= streamed_s / 0.4 + 3, (streamed_s, applied)
    assert max(applied) > 1


async def test_a_record_after_a_quiet_spell_is_not_held_for_the_interval(rig: Rig) -> None:
    # An interval far longer than the waits below: a held record would not be counted.
    projector, stop, task = await rig.running(interval_ms=60_000)
    try:
        await append_registrations(rig.log, 1, tag="lone")
        await wait_until(lambda: _at_least(rig, projector, 1), timeout_s=15)
        # The lane is busy now (a batch began less than an interval ago): what comes next
        # waits for the interval, and the runner still stops at once when told.
        await append_registrations(rig.log, 3, tag="held")
        await asyncio.sleep(2)
        assert await projector.counted(rig.redis) == 1
    finally:
        await _stopped(stop, task)
    assert projector.batches[0] == 1


async def test_a_runner_behind_holds_its_fetches_briefly_and_long_again_once_caught_up(
    rig: Rig,
) -> None:
    # A backlog of many full batches before the runner starts.
    await append_registrations(rig.log, 120, tag="backlog")
    projector, stop, task = await rig.running(interval_ms=0, batch_max_events=10)
    try:
        await wait_until(lambda: _at_least(rig, projector, 120), timeout_s=30)
        runner = projector.runner
        assert runner is not None
        # Caught up: the next read is short of a full batch, and the hold is long again.
        await wait_until(lambda: _is(runner.fetch_wait_ms, 500), timeout_s=10)
        await append_registrations(rig.log, 1, tag="after")
        await wait_until(lambda: _at_least(rig, projector, 121), timeout_s=15)
    finally:
        await _stopped(stop, task)
    assert await projector.counted(rig.redis) == 121
    # Behind, batches came full, and each next fetch was held briefly at most; the last
    # event, read alone after the catch-up, under the configured hold.
    assert projector.batches[:12] == [10] * 12, projector.batches
    assert set(projector.holds[1:12]) == {20}, projector.holds
    assert projector.holds[-1] == 500, projector.holds


async def _is(value: int, expected: int) -> bool:
    return value == expected
