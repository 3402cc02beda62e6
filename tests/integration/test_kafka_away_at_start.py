"""Projectors started while Kafka cannot be reached (still starting, a blip) wait for it, as
they wait for their database: the process stays up, says what it waits for, applies what
was written meanwhile once Kafka answers, and still stops at once when told to.

Kafka is cut off by a TCP proxy the test owns in front of the shared broker: clients
bootstrap through it, so while it refuses connections nothing of Kafka answers them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest
import structlog
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.events.base import registry
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.projections import worker
from bloghub.projections.worker import run_projectors
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.faults import dead_letters, signups_runner, until_waiting
from tests.support import append_registrations, until_applied, users_in_read_model, wait_until
from tests.tcp_proxy import Proxy, proxied

WAVE = 200
# Long enough for several refused tries; a process that gave up has ended by then.
REFUSED_S = 3.0
# What "at once" allows for: a try under way and a loaded machine's scheduling.
STOP_BOUND_S = 10.0


@contextlib.asynccontextmanager
async def kafka_away(settings: Settings) -> AsyncIterator[tuple[Proxy, Settings]]:
    """A proxy to the shared broker, refusing connections until the test says ``up``, and
    ``settings`` with Kafka reached through it."""
    host, port = settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    async with proxied(host, int(port)) as proxy:
        proxy.down()
        yield proxy, settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{proxy.port}"})


async def test_projectors_started_while_kafka_is_away_wait_and_then_apply(run_id: str) -> None:
    async with isolated(run_id, "kafka_away") as settings, kafka_away(settings) as (proxy, away):
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        stop = asyncio.Event()
        task = asyncio.create_task(run_projectors(away, ["users"], stop))
        try:
            await append_registrations(log, WAVE, tag="away")
            await asyncio.sleep(REFUSED_S)
            assert not task.done(), "the projectors' process ended while Kafka was away"
            proxy.up()
            await until_applied(settings, "users", WAVE)
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
            await log.close()
        assert await users_in_read_model(settings) == WAVE


async def test_projectors_waiting_for_kafka_say_where_and_stop_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What it waits for is said with the address it is looked for at and the setting that
    names it: a wrong address is the operator's to see."""
    async with kafka_away(settings) as (_, away):
        stop = asyncio.Event()
        with capture_logs() as lines:
            # A fresh logger: the module's may be bound already, to the processors of before.
            monkeypatch.setattr(worker, "log", structlog.get_logger(worker.__name__))
            task = asyncio.create_task(run_projectors(away, ["users"], stop))
            await asyncio.sleep(REFUSED_S)
        assert not task.done(), "the projectors' process ended while Kafka was away"
        stop.set()
        await asyncio.wait_for(task, timeout=STOP_BOUND_S)
    said = [line for line in lines if line["event"] == "projectors.waiting_for_kafka"]
    assert said, lines
    assert (said[0]["at"], said[0]["setting"]) == (away.kafka_bootstrap, "BLOGHUB_KAFKA_BOOTSTRAP")


async def test_a_runner_started_while_kafka_is_away_says_so_then_applies(
    settings: Settings, redis: Redis
) -> None:
    # The path a generation switched in, or a migration's new phase, takes: a runner of
    # its own, started while the process runs.
    prefix = f"{settings.prefix}-kaway{secrets.token_hex(2)}"
    await ensure_topics(settings.kafka_bootstrap, prefix, partitions=3, replication=1)
    log = EventLog(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, registry=registry, timeout_s=10
    )
    await log.start()
    try:
        async with kafka_away(settings) as (proxy, away), dead_letters(settings, redis) as dead:
            projector, runner, beat = signups_runner(away, prefix, redis, redis, dead)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(beat.run(stop))]
            try:
                await append_registrations(log, WAVE, tag="away")
                await until_waiting(redis, prefix, "store", where="kafka")
                await asyncio.sleep(REFUSED_S)
                assert not any(t.done() for t in tasks), "the runner ended while Kafka was away"
                proxy.up()
                users = topic_for(prefix, Family.USERS)

                async def applied() -> bool:
                    at = await projector.load_checkpoints([(users, p) for p in range(3)])
                    return sum(at.values()) >= WAVE

                await wait_until(applied, timeout_s=60)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        assert await redis.hgetall(projector.key("domains")) == {b"example.com": str(WAVE).encode()}
    finally:
        await log.close()
        await delete_topics(settings.kafka_bootstrap, prefix)


async def test_a_runner_waiting_for_kafka_stops_at_once(settings: Settings, redis: Redis) -> None:
    prefix = f"{settings.prefix}-kawaystop{secrets.token_hex(2)}"
    async with kafka_away(settings) as (_, away), dead_letters(settings, redis) as dead:
        _, runner, beat = signups_runner(away, prefix, redis, redis, dead)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(runner.run(stop)), asyncio.create_task(beat.run(stop))]
        try:
            await until_waiting(redis, prefix, "store", where="kafka")
            assert not any(t.done() for t in tasks), "the runner ended while Kafka was away"
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=STOP_BOUND_S)
