"""A partition that waits (its events fail, its dead letters cannot be sent) and then goes
to another instance in a rebalance waits here no more: the dashboard went on showing the
projector waiting on it, as long as this instance ran, after its new holder applied it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import cast

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from bloghub.events.base import Recorded, registry
from bloghub.projections import runner as runner_module
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.gate import Gate
from bloghub.projections.heartbeat import Heartbeat, WaitReason
from bloghub.projections.port import TP
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from tests.unit.test_failed_across_a_rebalance import Store
from tests.unit.test_gate import Consumer

KEPT, GONE = TopicPartition("t.users", 0), TopicPartition("t.users", 1)


async def test_a_partition_moved_away_no_longer_shows_as_waiting() -> None:
    # The heartbeat's key is only written by its beat, which this test does not run.
    beat = Heartbeat(cast(Redis, None), prefix="t", projector="signups", generation=1, ttl_s=15)
    runner = ProjectorRunner(
        Store(),
        config=RunnerConfig(bootstrap="unused", prefix="t"),
        registry=registry,
        dead_letters=cast(DeadLetters, None),
        heartbeat=beat,
    )
    kafka = cast(AIOKafkaConsumer, Consumer(KEPT, GONE))
    runner._consumer, runner._gate = kafka, Gate(kafka, structlog.get_logger())
    runner._waiting("t.users|0", WaitReason.STORE, "every event tried fails the same way")
    runner._waiting("t.users|1", WaitReason.STORE, "dead letters: the queue is unwell")
    runner._waiting("store", WaitReason.STORE, "the database refuses connections")

    runner.assigned({KEPT})
    runner.revoked()  # its placing task, which this test does not need

    assert beat.waiting_on() == ["t.users|0", "store"]


class Hanging(Store):
    """A store that takes its time with every batch (a search cluster that hangs)."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__()
        self.release = release

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        await self.release.wait()
        return await super().apply(records, next_offsets)


async def test_a_store_that_hangs_is_said_to_be_waited_for_before_it_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "SLOW_STORE_S", 0.05)
    beat = Heartbeat(cast(Redis, None), prefix="t", projector="signups", generation=1, ttl_s=15)
    release = asyncio.Event()
    runner = ProjectorRunner(
        Hanging(release),
        config=RunnerConfig(bootstrap="unused", prefix="t"),
        registry=registry,
        dead_letters=cast(DeadLetters, None),
        heartbeat=beat,
    )
    applying = asyncio.create_task(runner._apply_with_retries([], {}))
    await asyncio.sleep(0.2)
    assert beat.waiting_on() == ["store"], "a batch kept past the bound"
    release.set()
    assert await applying == []
    assert beat.waiting_on() == [], "answered: going again"
