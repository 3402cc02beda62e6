"""The Redis and search sink variants apply each record once, whatever is re-delivered."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch
from redis.asyncio import Redis

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis.batch_script import Write
from bloghub.events.base import Recorded, registry
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.redis_sink import RedisProjector
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.projections.search_sink import Doc, SearchProjector
from bloghub.settings import Settings
from tests.support import append_registrations, recorded, wait_until


class SignupsByDomain(RedisProjector):
    name = "signups_by_domain"
    families: tuple[Family, ...] = (Family.USERS,)

    def writes(self, records: Sequence[Recorded]) -> list[Write]:
        # The registrations here are written in clear (no key): the email is there.
        return [
            Write("HINCRBY", self.key("domains"), (rec.event.email.rsplit("@", 1)[1], 1))
            for rec in records
            if isinstance(rec.event, UserRegistered) and rec.event.email is not None
        ]


class UserSearch(SearchProjector):
    name = "user_emails"
    families: tuple[Family, ...] = (Family.USERS,)

    def index_body(self) -> dict[str, Any]:
        return {"mappings": {"properties": {"email": {"type": "keyword"}}}}

    def doc_id(self, record: Recorded) -> str | None:
        return record.event.user_id if isinstance(record.event, UserRegistered) else None

    def fold(
        self, doc_id: str, current: dict[str, Any] | None, records: list[Recorded]
    ) -> dict[str, Any] | None:
        seen = current["offset"] if current else -1
        last = max(records, key=lambda r: r.offset)
        if last.offset <= seen or not isinstance(last.event, UserRegistered):
            return None
        return {"email": last.event.email, "offset": last.offset}


def registration(email: str, offset: int, topic: str, user_id: str | None = None) -> Recorded:
    event = UserRegistered(user_id=user_id or new_id_str(), email=email, password_hash="h")
    return recorded(event, topic=topic, partition=0, offset=offset)


@pytest.fixture
async def search(settings: Settings) -> AsyncIterator[AsyncOpenSearch]:
    client = make_opensearch(settings.opensearch_url)
    yield client
    await client.close()


async def test_redis_sink_applies_a_redelivered_batch_once(
    redis: Redis, settings: Settings
) -> None:
    projector = SignupsByDomain(redis, prefix=f"{settings.prefix}-{secrets.token_hex(3)}")
    topic = topic_for(settings.prefix, Family.USERS)
    batch = [registration(f"u{i}@a.example", i, topic) for i in range(10)]
    assert len(await projector.apply(batch, {(topic, 0): 10})) == 10
    assert await projector.apply(batch, {(topic, 0): 10}) == []
    overlap = [*batch[5:], registration("late@b.example", 10, topic)]
    applied = await projector.apply(overlap, {(topic, 0): 11})
    assert [r.offset for r in applied] == [10]
    counts = await redis.hgetall(projector.key("domains"))
    assert counts == {b"a.example": b"10", b"b.example": b"1"}
    assert await projector.load_checkpoints([(topic, 0), (topic, 1)]) == {(topic, 0): 11}


async def test_redis_sink_under_the_runner_counts_every_event_once(
    redis: Redis, settings: Settings
) -> None:
    prefix = f"{settings.prefix}-r{secrets.token_hex(2)}"
    await ensure_topics(settings.kafka_bootstrap, prefix, partitions=3, replication=1)
    log = EventLog(
        bootstrap=settings.kafka_bootstrap, prefix=prefix, registry=registry, timeout_s=10
    )
    await log.start()
    await append_registrations(log, 500, tag="sink")
    await log.close()

    projector = SignupsByDomain(redis, prefix=prefix)
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=prefix, redis=redis)
    await dead.start()
    runner = ProjectorRunner(
        projector,
        config=RunnerConfig(bootstrap=settings.kafka_bootstrap, prefix=prefix, batch_max_events=64),
        registry=registry,
        dead_letters=dead,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def done() -> bool:
        stored = await projector.load_checkpoints(
            [(topic_for(prefix, Family.USERS), p) for p in range(3)]
        )
        return sum(stored.values()) >= 500

    try:
        await wait_until(done, timeout_s=60)
    finally:
        stop.set()
        await task
        await dead.close()
        await delete_topics(settings.kafka_bootstrap, prefix)
    assert await redis.hgetall(projector.key("domains")) == {b"example.com": b"500"}


async def test_search_sink_keeps_the_newest_version(
    search: AsyncOpenSearch, settings: Settings
) -> None:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    prefix = f"{settings.prefix}-{secrets.token_hex(3)}"
    projector = UserSearch(search, engine, prefix=prefix, generation=1)
    topic = topic_for(settings.prefix, Family.USERS)
    try:
        await projector.ensure_index(serve=True)
        user_id = new_id_str()
        newer = registration("new@x.example", 7, topic, user_id)
        older = registration("old@x.example", 3, topic, user_id)
        assert await projector.apply([newer], {(topic, 0): 8}) == [newer]
        # An older write delivered later (a replay beside live) must not win, and a checkpoint
        # that would move backwards stays where it is.
        # A write folded from a read that is no longer current is refused, not applied.
        stale = Doc(user_id, {"email": "old@x.example", "offset": 3}, None)
        assert await projector._bulk([stale]) == [user_id]
        await projector.apply([older], {(topic, 0): 4})
        doc = await search.get(index=projector.alias, id=user_id)
        assert doc["_source"] == {"email": "new@x.example", "offset": 7}
        assert await projector.load_checkpoints([(topic, 0)]) == {(topic, 0): 8}

        second = UserSearch(search, engine, prefix=prefix, generation=2)
        await second.ensure_index(serve=True)
        aliases = await search.indices.get_alias(name=projector.alias)
        assert set(aliases) == {second.index}
    finally:
        await search.indices.delete(index=f"{prefix}-user_emails-g*", ignore_unavailable=True)
        await engine.dispose()
