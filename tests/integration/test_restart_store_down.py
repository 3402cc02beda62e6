"""A projector never starts above its checkpoint. Restarted while its store is down, with
the group's committed offsets in Kafka ahead of the store (they are copied after the store
commits without waiting for the disk, and a crash can lose the store's side), it waits
for the store and then applies from the store's checkpoint: nothing is skipped."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from bloghub.events.base import registry
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.projections.heartbeat import Heartbeat
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig, group_id
from bloghub.projections.users import UsersProjector
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.faults import dead_letters, refusing_connections, running, until_waiting
from tests.support import (
    append_registrations,
    until_applied,
    users_in_read_model,
)

WAVE = 300


async def commit_group_at_end(settings: Settings) -> None:
    """Commit the users projector's group at the log's end, past what the store holds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id(settings.prefix, "users", 1),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        topic = topic_for(settings.prefix, Family.USERS)
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.commit(await consumer.end_offsets(parts))
    finally:
        await consumer.stop()


async def test_a_projector_restarted_while_its_store_is_down_skips_nothing(
    run_id: str, redis: Redis
) -> None:
    async with isolated(run_id, "restart") as settings:
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()

        def projector_runner() -> tuple[ProjectorRunner, Heartbeat]:
            beat = Heartbeat(
                redis, prefix=settings.prefix, projector="users", generation=1, ttl_s=15
            )
            runner = ProjectorRunner(
                UsersProjector.build(engine, settings, generation=1, cache=None),
                config=RunnerConfig.from_settings(settings),
                registry=registry,
                dead_letters=dead,
                heartbeat=beat,
            )
            return runner, beat

        engine = projector_engine(settings.sqlalchemy_url, pool_size=3)
        try:
            async with dead_letters(settings, redis) as dead:
                await append_registrations(log, WAVE, tag="first")
                async with running(*projector_runner()):
                    await until_applied(settings, "users", WAVE)
                await append_registrations(log, WAVE, tag="while-stopped")
                await commit_group_at_end(settings)
                async with refusing_connections(settings) as store_back:
                    await engine.dispose()  # its pooled sessions ended with the server's
                    restarted = projector_runner()
                    async with running(*restarted):
                        await until_waiting(redis, settings.prefix, "store", where="assignment")
                        # The store comes back while the projector runs.
                        await store_back()
                        await append_registrations(log, WAVE, tag="after")
                        await until_applied(settings, "users", 3 * WAVE)
        finally:
            await log.close()
            await engine.dispose()
        assert await users_in_read_model(settings) == 3 * WAVE
