"""An event newer than the code (a type it does not know, or a field it does not know)
makes the projector stop there and say so: nothing is dead-lettered, nothing after it is
applied. After an upgrade it goes on from there."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis

from bloghub.events.base import Event, EventRegistry, envelop, registry
from bloghub.events.log import EventLog
from bloghub.events.topics import Family
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.heartbeat import Heartbeat
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.projections.users import UsersProjector
from bloghub.settings import Settings
from tests.conftest import isolated, serve
from tests.e2e.test_ops import operator
from tests.faults import dead_lettered, dead_letters, running, until_waiting, waits
from tests.support import applied, wait_until


class UserNicknamed(Event):
    """A type that a newer release writes and this code's registry does not know."""

    TYPE = "user.nicknamed"
    FAMILY = Family.USERS
    AGGREGATE = "user_id"
    user_id: str
    nickname: str


def newer_registry() -> EventRegistry:
    newer = EventRegistry()
    newer.register(UserRegistered)
    newer.register(UserNicknamed)
    return newer


async def _emails(settings: Settings) -> set[str]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return {r["email"] for r in await conn.fetch("SELECT email FROM users_g1.users")}
    finally:
        await conn.close()


def _registered(email: str) -> Any:
    event = UserRegistered(user_id=new_id_str(), email=email, password_hash="h")
    return envelop(event, actor_id=None, request_id=None)


async def test_an_event_newer_than_the_code_waits_for_an_upgrade(run_id: str, redis: Redis) -> None:
    # One partition: the events after the new one are behind it in the same log.
    async with isolated(run_id, "behind", topic_partitions=1) as settings:
        newer = newer_registry()
        log = EventLog(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            registry=newer,
            timeout_s=10,
        )
        await log.start()
        nick = UserNicknamed(user_id=new_id_str(), nickname="neo")
        await log.append([_registered("first@example.com")])
        await log.append([envelop(nick, actor_id=None, request_id=None)])
        await log.append([_registered("after@example.com")])
        # A known type carrying a field this code does not know yet.
        unknown_field = _registered("extra@example.com")._replace(
            payload={**_registered("extra@example.com").payload, "locale": "zh-CN"}
        )
        await log.append([unknown_field])
        await log.close()

        engine = projector_engine(settings.sqlalchemy_url, pool_size=2)
        try:
            async with dead_letters(settings, redis) as dead:

                def runner(known: EventRegistry) -> tuple[ProjectorRunner, Heartbeat]:
                    beat = Heartbeat(
                        redis, prefix=settings.prefix, projector="users", generation=1, ttl_s=15
                    )
                    return ProjectorRunner(
                        UsersProjector.build(engine, settings, generation=1, cache=None),
                        config=RunnerConfig.from_settings(settings),
                        registry=known,
                        dead_letters=dead,
                        heartbeat=beat,
                    ), beat

                async with running(*runner(registry)), serve(settings) as live:
                    await until_waiting(redis, settings.prefix, "code")
                    assert await applied(settings, "users") == 1, "stopped at the new event"
                    assert await _emails(settings) == {"first@example.com"}
                    async with httpx.AsyncClient(base_url=live.url) as client:
                        ready = (await client.get("/readyz")).json()
                        lag = await client.get("/ops/api/lag", headers=operator(settings))
                    said = [w for w in ready["waiting"] if w["projector"] == "users"]
                    assert said
                    assert said[0]["reason"] == "code"
                    # Why in detail is the operators' (heartbeats, the dashboard), not
                    # everyone's: the readiness answer names no event.
                    assert "detail" not in said[0]
                    (beat,) = await waits(redis, settings.prefix)
                    assert "user.nicknamed" in beat["detail"]
                    users = next(p for p in lag.json()["projectors"] if p["projector"] == "users")
                    assert users["state"] == "UPGRADE"

                # The upgrade knows the type, but not yet the field: it stops there.
                upgraded = newer_registry()
                async with running(*runner(upgraded)):

                    async def past_the_type() -> bool:
                        return await applied(settings, "users") == 3 and any(
                            "locale" in w["detail"] for w in await waits(redis, settings.prefix)
                        )

                    await wait_until(past_the_type, timeout_s=60)
                assert await _emails(settings) == {"first@example.com", "after@example.com"}
                assert await dead_lettered(redis, settings.prefix, "users") == 0
        finally:
            await engine.dispose()
