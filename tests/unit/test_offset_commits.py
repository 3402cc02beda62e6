"""Kafka's copy of the checkpoints: the first commit goes at once, later ones at most one per
interval with the newest offsets, and a flush does not wait out the interval."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, cast

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from bloghub.projections.offset_commits import OffsetCommitter

TP0 = ("t", 0)


class Consumer:
    """The two calls the committer makes of aiokafka's consumer."""

    def __init__(self) -> None:
        self.commits: list[tuple[float, dict[TopicPartition, int]]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(*TP0)}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append((time.monotonic(), dict(offsets)))


def committer(consumer: Consumer, interval_s: float) -> OffsetCommitter:
    log: Any = structlog.get_logger()
    out = OffsetCommitter(cast(AIOKafkaConsumer, consumer), log)
    out.INTERVAL_S = interval_s
    return out


async def test_a_steady_stream_of_batches_is_committed_once_per_interval() -> None:
    consumer = Consumer()
    offsets = committer(consumer, interval_s=0.2)
    started = time.monotonic()
    for offset in range(1, 51):  # a batch every 10 ms for half a second
        offsets.note({TP0: offset})
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the last interval runs out; what was noted is committed
    times = [at - started for at, _ in consumer.commits]
    assert 2 <= len(times) <= 5, times  # not fifty
    assert times[0] < 0.05  # the first batch's offset goes at once
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times)), times
    assert consumer.commits[-1][1] == {TopicPartition(*TP0): 50}


async def test_a_flush_commits_without_waiting_out_the_interval() -> None:
    consumer = Consumer()
    offsets = committer(consumer, interval_s=30)
    offsets.note({TP0: 1})
    await asyncio.sleep(0.01)
    offsets.note({TP0: 7})
    started = time.monotonic()
    await offsets.flush()
    assert time.monotonic() - started < 1
    assert consumer.commits[-1][1] == {TopicPartition(*TP0): 7}
