"""A record that cannot be decoded, met while the dead-letter queue's Kafka takes the letter
but never answers, holds its partition within the bound and says so (``store``): the other
partitions go on, its lane's included, the runner keeps running, and a stop is prompt.
Once the queue answers, the record is dead-lettered and counted once, and what follows it
is applied.

The queue lives on a broker of the test's own, frozen (SIGSTOP) to stop answering: the
projector's own topics stay on the shared broker, which keeps working."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition
from redis.asyncio import Redis

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.events.base import registry
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, Family, topic_for
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.port import TP
from bloghub.settings import Settings
from tests.conftest import read_topic
from tests.faults import dead_lettered, signups_runner, until_waiting, waits
from tests.private_kafka import PrivateKafka, private_kafka
from tests.support import append_registrations, append_undecodable, end_offsets, wait_until

WAVE = 200
WAIT_S = 1.0  # how long one try waits for the queue's confirmation
DELIVERY_TIMEOUT_S = 4.0  # how long a producer may go on trying to deliver a letter
# What "at once" allows for: the tries under way and a loaded machine's scheduling.
STOP_BOUND_S = 10.0


@pytest.fixture
async def queue_kafka() -> AsyncIterator[PrivateKafka]:
    """A broker for each test: one just thawed from a long freeze may still be settling."""
    async with private_kafka() as kafka:
        yield kafka


@pytest.fixture
async def prefix(settings: Settings, queue_kafka: PrivateKafka) -> AsyncIterator[str]:
    """Topics of the test's own: the projector's on the shared broker, the queue's on the
    private one."""
    name = f"{settings.prefix}-dlqhang{secrets.token_hex(2)}"
    for bootstrap in (settings.kafka_bootstrap, queue_kafka.bootstrap):
        await ensure_topics(bootstrap, name, partitions=settings.topic_partitions, replication=1)
    yield name
    await delete_topics(settings.kafka_bootstrap, name)


def queue(queue_kafka: PrivateKafka, prefix: str, redis: Redis) -> DeadLetters:
    return DeadLetters(
        bootstrap=queue_kafka.bootstrap,
        prefix=prefix,
        redis=redis,
        wait_s=WAIT_S,
        delivery_timeout_s=DELIVERY_TIMEOUT_S,
    )


async def test_an_unanswering_queue_holds_its_partition_and_the_letter_lands_once(
    settings: Settings, redis: Redis, queue_kafka: PrivateKafka, prefix: str
) -> None:
    partitions = settings.topic_partitions
    users = topic_for(prefix, Family.USERS)
    held = f"{users}|0"
    log = EventLog(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, registry=registry, timeout_s=10
    )
    await log.start()
    dead = queue(queue_kafka, prefix, redis)
    await dead.start()
    projector, runner, beat = signups_runner(settings, prefix, redis, redis, dead)
    tps: list[TP] = [(users, p) for p in range(partitions)]

    async def reached(count: int) -> None:
        async def done() -> bool:
            return sum((await projector.load_checkpoints(tps)).values()) >= count

        await wait_until(done, timeout_s=90)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(beat.run(stop))]
    try:
        await append_registrations(log, WAVE, tag="before")
        await reached(WAVE)
        with queue_kafka.frozen():
            bad = await append_undecodable(settings.kafka_bootstrap, users, 0)
            await append_registrations(log, WAVE, tag="during")
            await until_waiting(redis, prefix, "store", where=held)
            (said,) = [w for w in await waits(redis, prefix) if w["where"] == held]
            assert "dead letters" in said["detail"]
            # Every other partition, the one sharing the held partition's lane included,
            # reaches the end of the log.
            ends = await end_offsets(
                settings.kafka_bootstrap, [TopicPartition(users, p) for p in range(1, partitions)]
            )

            async def others_done() -> bool:
                at = await projector.load_checkpoints(tps)
                return all(at.get((tp.topic, tp.partition), 0) >= e for tp, e in ends.items())

            await wait_until(others_done, timeout_s=60)
            # Past the delivery bound: the first producer is given up, the partition is
            # read again and held again, and still stands at the record.
            await asyncio.sleep(DELIVERY_TIMEOUT_S + 2 * WAIT_S)
            assert (await projector.load_checkpoints(tps))[(users, 0)] == bad
            assert not any(t.done() for t in tasks), "the runner stopped"
        await append_registrations(log, WAVE, tag="after")
        await reached(3 * WAVE + 1)

        async def no_longer_held() -> bool:
            return all(w["where"] != held for w in await waits(redis, prefix))

        await wait_until(no_longer_held, timeout_s=30)
        assert not any(t.done() for t in tasks)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        await asyncio.wait_for(dead.close(), timeout=STOP_BOUND_S)
        await log.close()
    assert await dead_lettered(redis, prefix, projector.name) == 1
    queue_settings = settings.model_copy(update={"kafka_bootstrap": queue_kafka.bootstrap})
    letters = await read_topic(queue_settings, topic_for(prefix, DLQ))
    origins = {
        (h["origin_topic"].decode(), int(h["origin_partition"]), int(h["origin_offset"]))
        for h in (dict(r.headers) for r in letters)
    }
    # A request a given-up producer had handed to the broker may land late: a second copy
    # of the same letter at most, never another record.
    assert origins == {(users, 0, bad)}
    assert await redis.hgetall(projector.key("domains")) == {b"example.com": str(3 * WAVE).encode()}


async def test_a_runner_whose_queue_does_not_answer_stops_at_once(
    settings: Settings, redis: Redis, queue_kafka: PrivateKafka, prefix: str
) -> None:
    users = topic_for(prefix, Family.USERS)
    dead = queue(queue_kafka, prefix, redis)
    await dead.start()
    projector, runner, beat = signups_runner(settings, prefix, redis, redis, dead)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(beat.run(stop))]
    with queue_kafka.frozen():
        try:
            await append_undecodable(settings.kafka_bootstrap, users, 0)
            await until_waiting(redis, prefix, "store", where=f"{users}|0")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=STOP_BOUND_S)
            await asyncio.wait_for(dead.close(), timeout=STOP_BOUND_S)
    assert await dead_lettered(redis, prefix, projector.name) == 0
