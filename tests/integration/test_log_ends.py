"""Where the log ends, as the API asks it of the broker to refuse positions past it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bloghub.adapters.kafka import LogEnds
from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.support import wait_until


async def test_an_offset_is_beyond_the_log_until_a_record_is_there(
    settings: Settings, event_log: EventLog
) -> None:
    event = UserRegistered(user_id=new_id_str(), email="ends@example.com", password_hash="h")
    written = await event_log.append([envelop(event, actor_id=None, request_id=None)])
    ((topic, partition, offset),) = list(written)
    ends = LogEnds(settings.kafka_bootstrap, client_id="log-ends-test")
    try:
        assert await ends.beyond({(topic, partition): offset}) is False  # written: within
        assert await ends.beyond({(topic, partition): offset + 10**6}) is True
    finally:
        await ends.close()


async def test_a_partition_the_topic_does_not_have_is_beyond_the_log_at_once(
    settings: Settings, event_log: EventLog
) -> None:
    """A signed position from before the topics were made again with fewer partitions: the
    broker never answers for the partition, so it must not be asked (the read would wait
    its whole bound, then for ever say it is catching up)."""
    event = UserRegistered(user_id=new_id_str(), email="ends@example.com", password_hash="h")
    written = await event_log.append([envelop(event, actor_id=None, request_id=None)])
    ((topic, partition, offset),) = list(written)
    ends = LogEnds(settings.kafka_bootstrap, client_id="log-ends-test", timeout_s=5.0)
    try:
        beyond = {(topic, partition): offset, (topic, settings.topic_partitions + 3): 0}
        # A timed-out question would be None (left open).
        assert await ends.beyond(beyond) is True
        assert await ends.beyond({(topic, settings.topic_partitions + 3): 0}) is True
        assert await ends.beyond({(topic, partition): offset}) is False
    finally:
        await ends.close()


async def test_a_missing_partition_is_asked_for_once_however_many_ask(
    settings: Settings, event_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positions from before the topics were made again come in numbers: the first finds
    the topic lacks the partition, the rest (of any partition it lacks) are answered from
    that: each ask would hold up every other read that must ask."""
    event = UserRegistered(user_id=new_id_str(), email="ends@example.com", password_hash="h")
    written = await event_log.append([envelop(event, actor_id=None, request_id=None)])
    ((topic, partition, offset),) = list(written)
    learned: list[set[str]] = []
    learn = LogEnds._learn

    async def counted(self: LogEnds, topics: set[str]) -> dict[str, int]:
        learned.append(topics)
        return await learn(self, topics)

    monkeypatch.setattr(LogEnds, "_learn", counted)
    ends = LogEnds(settings.kafka_bootstrap, client_id="log-ends-test", timeout_s=5.0)
    nowhere = [(topic, settings.topic_partitions + n) for n in (3, 3, 4, 5, 6, 7, 8, 9)]
    try:
        answers = await asyncio.gather(*(ends.beyond({tp: 0}) for tp in nowhere))
        assert answers == [True] * 8
        # The first learned the topic's partitions; the rest were answered from that.
        assert learned == [{topic}]
        assert await ends.beyond({(topic, partition): offset}) is False
    finally:
        await ends.close()


async def test_a_burst_over_every_topic_is_refused_within_the_bound(settings: Settings) -> None:
    """Stale positions on several topics at once, each topic not yet known to lack the
    partition: every one is answered beyond the log within the one-second bound (a topic's
    partitions are asked of the broker, which answers; its ends for a partition it lacks,
    it never would), none left unknown to wait its whole read bound."""
    ends = LogEnds(settings.kafka_bootstrap, client_id="log-ends-test")
    stale = [
        (topic_for(settings.prefix, family), settings.topic_partitions + n)
        for family in Family
        for n in (5, 6)
    ]
    try:
        answers = await asyncio.gather(*(ends.beyond({tp: 1}) for tp in stale))
        assert answers == [True] * len(stale)
    finally:
        await ends.close()


@dataclass
class OwnTopic:
    """A topic of the test's own, the clients that change it, and a ``LogEnds`` that takes
    a topic's partitions as learned only for the question it asks."""

    name: str
    admin: AIOKafkaAdminClient
    producer: AIOKafkaProducer
    ends: LogEnds


@asynccontextmanager
async def own_topic(settings: Settings, name: str, partitions: int) -> AsyncIterator[OwnTopic]:
    topic = f"{settings.prefix}.{name}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    ends = LogEnds(
        settings.kafka_bootstrap, client_id="log-ends-test", timeout_s=5.0, partitions_kept_s=0
    )
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
        await wait_until(lambda: _partitions_of(admin, topic, partitions), timeout_s=10)
        yield OwnTopic(topic, admin, producer, ends)
    finally:
        await ends.close()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def test_a_partition_added_while_running_is_answered_for(settings: Settings) -> None:
    """A partition the topic did not have when the ends were last asked is learned afresh,
    not refused from what was known before."""
    async with own_topic(settings, "grown", 2) as own:
        assert await own.ends.beyond({(own.name, 3): 0}) is True  # no such partition yet
        await own.admin.create_partitions({own.name: NewPartitions(total_count=4)})
        await wait_until(lambda: _partitions_of(own.admin, own.name, 4), timeout_s=10)
        await own.producer.start()
        await own.producer.send_and_wait(own.name, b"x", partition=3)
        assert await own.ends.beyond({(own.name, 3): 0}) is False


async def test_a_topic_made_again_with_fewer_partitions_is_learned_afresh(
    settings: Settings,
) -> None:
    """The consumer's metadata still names the partition the topic lost; the broker never
    answers for its end. A position on it is beyond the log, not left unknown."""
    async with own_topic(settings, "remade", 3) as own:
        await own.producer.start()
        await own.producer.send_and_wait(own.name, b"x", partition=2)
        assert await own.ends.beyond({(own.name, 2): 0}) is False
        await own.admin.delete_topics([own.name])

        async def made_again() -> bool:
            try:
                await own.admin.create_topics([NewTopic(own.name, 2, replication_factor=1)])
            except TopicAlreadyExistsError:  # the old one is still being deleted
                return False
            return True

        await wait_until(made_again, timeout_s=30)
        await wait_until(lambda: _partitions_of(own.admin, own.name, 2), timeout_s=10)
        assert await own.ends.beyond({(own.name, 2): 5}) is True


async def _partitions_of(admin: AIOKafkaAdminClient, topic: str, count: int) -> bool:
    """Whether the broker's metadata shows ``topic`` with ``count`` partitions (a producer
    started before it does refuses to send to the new ones)."""
    (described,) = await admin.describe_topics([topic])
    return len(described["partitions"]) == count


async def test_an_unreachable_broker_leaves_the_question_open() -> None:
    ends = LogEnds("127.0.0.1:9", client_id="log-ends-test", timeout_s=0.5)
    try:
        assert await ends.beyond({("nowhere.users", 0): 5}) is None  # the read just waits
    finally:
        await ends.close()
