"""A record that cannot be decoded, met while the dead-letter queue cannot take it (its
Redis down, or refusing writes after the letter reached the topic), holds its partition
and says so (``store``): nothing after it is applied, the other partitions and the runner
go on. Once the queue works the record is dead-lettered once, counted once, and what
follows it is applied."""

from __future__ import annotations

import asyncio
import contextlib
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
from bloghub.settings import Settings
from tests.conftest import read_topic
from tests.faults import dead_lettered, out_of_memory, signups_runner, until_waiting, waits
from tests.private_redis import PrivateRedis, private_redis
from tests.support import append_registrations, append_undecodable, end_offsets, wait_until

WAVE = 200


@contextlib.asynccontextmanager
async def failing(fault: str, server: PrivateRedis, client: Redis) -> AsyncIterator[None]:
    """The dead-letter queue's Redis fails while the block runs: gone (connections
    refused), or refusing writes (the letter reaches the topic, its count does not)."""
    if fault == "out_of_memory":
        async with out_of_memory(client):
            yield
        return
    await server.stop()
    try:
        yield
    finally:
        await server.start()


@pytest.mark.parametrize("fault", ["down", "out_of_memory"])
async def test_a_dead_letter_queue_that_fails_holds_its_partition_and_nothing_else(
    settings: Settings, redis: Redis, fault: str
) -> None:
    prefix = f"{settings.prefix}-dlqout{secrets.token_hex(2)}"
    partitions = settings.topic_partitions
    await ensure_topics(settings.kafka_bootstrap, prefix, partitions=partitions, replication=1)
    users = topic_for(prefix, Family.USERS)
    held = f"{users}|0"
    log = EventLog(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, registry=registry, timeout_s=10
    )
    await log.start()
    try:
        async with private_redis() as queue_server:
            queue = queue_server.client()
            dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=prefix, redis=queue)
            await dead.start()
            projector, runner, beat = signups_runner(settings, prefix, redis, redis, dead)
            tps = [(users, p) for p in range(partitions)]

            async def checkpoints() -> dict[tuple[str, int], int]:
                return await projector.load_checkpoints(tps)

            async def reached(count: int) -> None:
                async def done() -> bool:
                    return sum((await checkpoints()).values()) >= count

                await wait_until(done, timeout_s=90)

            stop = asyncio.Event()
            tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(beat.run(stop))]
            try:
                await append_registrations(log, WAVE, tag="before")
                await reached(WAVE)
                async with failing(fault, queue_server, queue):
                    bad = await append_undecodable(settings.kafka_bootstrap, users, 0)
                    await append_registrations(log, WAVE, tag="during")
                    await until_waiting(redis, prefix, "store", where=held)
                    (said,) = [w for w in await waits(redis, prefix) if w["where"] == held]
                    assert "dead letters" in said["detail"]
                    ends = await end_offsets(
                        settings.kafka_bootstrap,
                        [TopicPartition(users, p) for p in range(1, partitions)],
                    )

                    async def others_done() -> bool:
                        at = await checkpoints()
                        return all(
                            at.get((tp.topic, tp.partition), 0) >= e for tp, e in ends.items()
                        )

                    await wait_until(others_done, timeout_s=60)
                    await asyncio.sleep(2.0)  # held, read again, held again: still standing
                    assert (await checkpoints())[(users, 0)] == bad
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
                await dead.close()
            counted = await dead_lettered(queue, prefix, projector.name)
            await queue.aclose()
        assert counted == 1
        letters = await read_topic(settings, topic_for(prefix, DLQ))
        origins = [
            (h["origin_topic"].decode(), int(h["origin_partition"]), int(h["origin_offset"]))
            for h in (dict(r.headers) for r in letters)
        ]
        assert origins == [(users, 0, bad)], "dead-lettered once, nothing else"
        assert await redis.hgetall(projector.key("domains")) == {
            b"example.com": str(3 * WAVE).encode()
        }
    finally:
        await log.close()
        await delete_topics(settings.kafka_bootstrap, prefix)
