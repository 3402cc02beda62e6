"""A store that is unwell is waited for, never a reason to dead-letter: PostgreSQL that
refuses writes (a standby after failover) and Redis out of memory, while events flow. The
projector says it waits; once the store is back every event is applied, none is lost."""

from __future__ import annotations

import secrets

import asyncpg
from redis.asyncio import Redis

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.events.base import registry
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, Family, topic_for
from bloghub.settings import Settings
from tests.conftest import isolated, projecting, read_topic
from tests.faults import (
    dead_lettered,
    dead_letters,
    out_of_memory,
    private_redis_client,
    read_only,
    running,
    signups_runner,
    until_waiting,
)
from tests.support import (
    append_registrations,
    applied,
    until_applied,
    users_in_read_model,
    wait_until,
)

WAVE = 300


async def test_postgres_refusing_writes_is_waited_for_and_nothing_is_dead_lettered(
    run_id: str, redis: Redis
) -> None:
    async with isolated(run_id, "readonly") as settings:
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()

        try:
            async with projecting(settings, "users"):
                await append_registrations(log, WAVE, tag="before")
                await until_applied(settings, "users", WAVE)
                async with read_only(settings):
                    await append_registrations(log, WAVE, tag="during")
                    await until_waiting(redis, settings.prefix, "store")
                await append_registrations(log, WAVE, tag="after")
                await until_applied(settings, "users", 3 * WAVE)
        finally:
            await log.close()
        assert await users_in_read_model(settings) == 3 * WAVE
        assert await dead_lettered(redis, settings.prefix, "users") == 0
        assert await read_topic(settings, topic_for(settings.prefix, DLQ)) == []


async def test_redis_out_of_memory_is_waited_for_and_nothing_is_dead_lettered(
    settings: Settings, redis: Redis
) -> None:
    prefix = f"{settings.prefix}-oom{secrets.token_hex(2)}"
    own = settings.model_copy(update={"prefix": prefix})
    await ensure_topics(settings.kafka_bootstrap, prefix, partitions=3, replication=1)
    log = EventLog(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, registry=registry, timeout_s=10
    )
    await log.start()
    try:
        async with private_redis_client() as store, dead_letters(own, redis) as dead:
            projector, runner, beat = signups_runner(settings, prefix, store, redis, dead)
            partitions = [(topic_for(prefix, Family.USERS), p) for p in range(3)]

            async def reached(count: int) -> None:
                async def done() -> bool:
                    return sum((await projector.load_checkpoints(partitions)).values()) >= count

                await wait_until(done, timeout_s=90)

            async with running(runner, beat):
                await append_registrations(log, WAVE, tag="before")
                await reached(WAVE)
                async with out_of_memory(store):
                    await append_registrations(log, WAVE, tag="during")
                    await until_waiting(redis, prefix, "store")
                await append_registrations(log, WAVE, tag="after")
                await reached(3 * WAVE)
            counts = await store.hgetall(projector.key("domains"))
        assert counts == {b"example.com": str(3 * WAVE).encode()}
        assert await dead_lettered(redis, prefix, projector.name) == 0
    finally:
        await log.close()
        await delete_topics(settings.kafka_bootstrap, prefix)


async def test_every_event_failing_alike_halts_instead_of_emptying_into_the_dlq(
    run_id: str, redis: Redis
) -> None:
    async with isolated(run_id, "alike") as settings:
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # A refusal no adapter names: the store says nothing about whose fault it is.
            await conn.execute(
                "CREATE FUNCTION users_g1.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused for now' USING ERRCODE = 'P0001'; END $$; "
                "CREATE TRIGGER refuse BEFORE INSERT ON users_g1.users "
                "FOR EACH ROW EXECUTE FUNCTION users_g1.refuse()"
            )
            async with projecting(settings, "users"):
                await append_registrations(log, WAVE, tag="refused")
                await until_waiting(redis, settings.prefix, "store")
                assert await applied(settings, "users") == 0
                await conn.execute("DROP TRIGGER refuse ON users_g1.users")

                async def done() -> bool:
                    return await applied(settings, "users") >= WAVE

                await wait_until(done, timeout_s=90)
        finally:
            await conn.close()
            await log.close()
        assert await users_in_read_model(settings) == WAVE
        assert await dead_lettered(redis, settings.prefix, "users") == 0
