"""The dashboard's latest dead letters, read from the tail of the dead-letter topic on
demand: newest first, as many as asked, and nothing fetched between readings."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bloghub.events.topics import DLQ, topic_for
from bloghub.ops.dead_letter_view import DeadLetterView
from bloghub.settings import Settings


async def _dead_letter(producer: AIOKafkaProducer, topic: str, n: int, partition: int) -> None:
    headers = [("projector", b"users"), ("type", b"PasswordChanged"), ("error", f"e{n}".encode())]
    await producer.send_and_wait(
        topic, b"{}", partition=partition, headers=headers, timestamp_ms=1_700_000_000_000 + n
    )


async def test_the_latest_letters_are_read_again_each_time_and_nothing_is_fetched_between(
    settings: Settings,
) -> None:
    # A topic of its own: the run's is shared with tests that dead-letter events.
    prefix = f"{settings.prefix}-dlview"
    topic = topic_for(prefix, DLQ)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    view = DeadLetterView(bootstrap=settings.kafka_bootstrap, prefix=prefix, partitions=2)
    await producer.start()
    await view.start()
    try:
        for n in range(3):
            await _dead_letter(producer, topic, n, partition=n % 2)
        first = await view.latest(limit=2)
        assert [letter["error"] for letter in first] == ["e2", "e1"]
        # Between readings the consumer holds no partition, so it fetches nothing.
        assert not view._consumer.assignment()
        await _dead_letter(producer, topic, 3, partition=1)
        again = await view.latest(limit=10)
        assert [letter["error"] for letter in again] == ["e3", "e2", "e1", "e0"]
        assert not view._consumer.assignment()
    finally:
        await view.close()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
