"""Where the log ends, as the API asks it of the broker to refuse positions past it."""

from __future__ import annotations

import asyncio

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


async def test_a_partition_added_while_running_is_answered_for(settings: Settings) -> None:
    """A partition the topic did not have when the ends were last asked is learned afresh,
    not refused from what was known before."""
    topic = f"{settings.prefix}.grown"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    # A partition found missing is not taken missing for a while after, here.
    ends = LogEnds(
        settings.kafka_bootstrap, client_id="log-ends-test", timeout_s=5.0, partitions_kept_s=0
    )
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        assert await ends.beyond({(topic, 3): 0}) is True  # no such partition yet
        await admin.create_partitions({topic: NewPartitions(total_count=4)})
        await wait_until(lambda: _partitions_of(admin, topic, 4), timeout_s=10)
        await producer.start()
        await producer.send_and_wait(topic, b"x", partition=3)
        assert await ends.beyond({(topic, 3): 0}) is False
    finally:
        await ends.close()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def test_a_topic_made_again_with_fewer_partitions_is_learned_afresh(
    settings: Settings,
) -> None:
    """The consumer's metadata still names the partition the topic lost; the broker never
    answers for its end. A position on it is beyond the log, not left unknown."""
    topic = f"{settings.prefix}.remade"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    ends = LogEnds(
        settings.kafka_bootstrap, client_id="log-ends-test", timeout_s=5.0, partitions_kept_s=0
    )
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        await wait_until(lambda: _partitions_of(admin, topic, 3), timeout_s=10)
        await producer.start()
        await producer.send_and_wait(topic, b"x", partition=2)
        assert await ends.beyond({(topic, 2): 0}) is False
        await admin.delete_topics([topic])

        async def made_again() -> bool:
            try:
                await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
            except TopicAlreadyExistsError:  # the old one is still being deleted
                return False
            return True

        await wait_until(made_again, timeout_s=30)
        await wait_until(lambda: _partitions_of(admin, topic, 2), timeout_s=10)
        assert await ends.beyond({(topic, 2): 5}) is True
    finally:
        await ends.close()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


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
