"""Lag read from the real broker: messages behind, and the age of the oldest record a group
has not consumed, within a second of the truth."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Mapping

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.events.topics import Family, topic_for
from bloghub.ops.lag import GroupLag, LagReader, PartitionLag
from bloghub.settings import Settings


@pytest.fixture
async def topic(settings: Settings) -> AsyncIterator[str]:
    """The users topic of a fresh prefix with three empty partitions."""
    prefix = f"{settings.prefix}-lag{secrets.token_hex(3)}"
    await ensure_topics(settings.kafka_bootstrap, prefix, partitions=3, replication=1)
    yield topic_for(prefix, Family.USERS)
    await delete_topics(settings.kafka_bootstrap, prefix)


@pytest.fixture
async def reader(settings: Settings) -> AsyncIterator[LagReader]:
    r = LagReader(settings.kafka_bootstrap, settings.prefix)
    await r.start()
    yield r
    await r.close()


async def produce(settings: Settings, topic: str, partition: int, ages_s: list[float]) -> list[int]:
    """One record per age, stamped that long before the moment it is sent; their stamps."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        stamps = []
        for age in ages_s:
            stamp = int((time.time() - age) * 1000)
            await producer.send_and_wait(topic, b"e", partition=partition, timestamp_ms=stamp)
            stamps.append(stamp)
        return stamps
    finally:
        await producer.stop()


async def commit(settings: Settings, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(dict(offsets))
    finally:
        await consumer.stop()


async def read_timed(
    reader: LagReader, groups: Mapping[str, list[str]]
) -> tuple[list[GroupLag], float, float]:
    before = time.time()
    result = await reader.read(groups)
    return result, before, time.time()


def assert_age(part: PartitionLag, stamp_ms: int, before: float, after: float) -> None:
    """The age of the record stamped ``stamp_ms`` at some moment of the read, ±1 s."""
    assert part.lag_seconds is not None
    assert before - stamp_ms / 1000 - 1 < part.lag_seconds < after - stamp_ms / 1000 + 1


async def test_lag_in_messages_and_in_seconds_of_the_oldest_unconsumed(
    settings: Settings, reader: LagReader, topic: str
) -> None:
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    stamps0 = await produce(settings, topic, 0, [120, 60, 10])
    stamps1 = await produce(settings, topic, 1, [30, 5])
    behind, fresh = f"{topic}.behind", f"{topic}.never"
    await commit(settings, behind, {p0: 1, p1: 2})

    groups, before, after = await read_timed(reader, {behind: [topic], fresh: [topic]})

    by_group = {g.group: g for g in groups}
    b0, b1, b2 = by_group[behind].partitions
    assert (b0.end_offset, b0.log_start, b0.committed, b0.lag) == (3, 0, 1, 2)
    assert b0.lag_seconds is not None
    assert abs(b0.lag_seconds - 60) < 1, "the oldest unconsumed is the record stamped now-60 s"
    assert_age(b0, stamps0[1], before, after)
    assert (b1.end_offset, b1.committed, b1.lag, b1.lag_seconds) == (2, 2, 0, 0.0)
    assert (b2.end_offset, b2.committed, b2.lag, b2.lag_seconds) == (0, None, 0, 0.0)
    assert by_group[behind].lag == 2
    assert by_group[behind].lag_seconds == b0.lag_seconds

    f0, f1, f2 = by_group[fresh].partitions
    assert (f0.committed, f0.lag, f1.committed, f1.lag, f2.lag) == (None, 3, None, 2, 0)
    assert_age(f0, stamps0[0], before, after)
    assert_age(f1, stamps1[0], before, after)
    assert by_group[fresh].lag == 5
    assert by_group[fresh].lag_seconds == f0.lag_seconds

    # The same clients serve the next read: once the group catches up, nothing is behind.
    await commit(settings, behind, {p0: 3})
    (caught_up,) = await reader.read({behind: [topic]})
    assert (caught_up.lag, caught_up.lag_seconds) == (0, 0.0)
    assert [p.lag for p in caught_up.partitions] == [0, 0, 0]


async def test_a_commit_below_the_retention_floor_counts_from_the_floor(
    settings: Settings, reader: LagReader, topic: str
) -> None:
    p0 = TopicPartition(topic, 0)
    stamps = await produce(settings, topic, 0, [50, 40, 30, 20, 10])
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        floor = await admin.delete_records({p0: RecordsToDelete(3)})
    finally:
        await admin.close()
    assert floor == {p0: 3}
    group = f"{topic}.floor"
    await commit(settings, group, {p0: 1})

    (lag,), before, after = await read_timed(reader, {group: [topic]})

    part = lag.partitions[0]
    assert (part.end_offset, part.log_start, part.committed) == (5, 3, 1)
    assert part.lag == 2, "records below the floor are gone; only offsets 3 and 4 are owed"
    assert_age(part, stamps[3], before, after)
    assert all(p.lag >= 0 for p in lag.partitions)
    assert lag.lag == 2


async def test_a_missing_topic_has_no_partitions_rather_than_stalling(
    settings: Settings, reader: LagReader
) -> None:
    missing = f"{settings.prefix}-absent{secrets.token_hex(3)}.users"
    (lag,) = await reader.read({f"{missing}.group": [missing]})
    assert (lag.partitions, lag.lag, lag.lag_seconds) == ((), 0, 0.0)
