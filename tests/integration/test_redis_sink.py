"""The Redis sink is sound: a batch that cannot apply writes nothing, not even part of
itself; it refuses a server that could evict its checkpoints; and it reports its progress
where read-your-writes waits."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis.batch_script import Write
from bloghub.api.consistency import Progress
from bloghub.events.base import Recorded
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.projections.redis_sink import EvictionUnsafe
from bloghub.settings import Settings
from tests.integration.test_sinks import SignupsByDomain, registration
from tests.private_redis import private_redis


async def test_a_batch_that_cannot_apply_writes_nothing(redis: Redis, settings: Settings) -> None:
    projector = SignupsByDomain(redis, prefix=f"{settings.prefix}-{secrets.token_hex(3)}")
    topic = topic_for(settings.prefix, Family.USERS)
    good = [registration(f"u{i}@a.example", i, topic) for i in range(3)]
    assert len(await projector.apply(good, {(topic, 0): 3})) == 3
    # Something else made one of the keys this batch writes a string: with MULTI/EXEC the
    # increments before the failing one would stay, and a retry would count them again.
    await redis.set(projector.key("domains-b"), "not a hash")

    class Split(SignupsByDomain):
        def writes(self, records: Sequence[Recorded]) -> list[Write]:
            out = super().writes(records)
            return [*out, *(replace(w, key=self.key("domains-b")) for w in out[-1:])]

    split = Split(redis, prefix=projector.keyspace.rsplit(":", 2)[0])
    more = [registration(f"v{i}@a.example", 3 + i, topic) for i in range(3)]
    with pytest.raises(ResponseError, match="which is a string"):
        await split.apply(more, {(topic, 0): 6})
    assert await redis.hgetall(projector.key("domains")) == {b"a.example": b"3"}
    assert await projector.load_checkpoints([(topic, 0)]) == {(topic, 0): 3}


async def test_refuses_a_server_that_could_evict_its_checkpoints(settings: Settings) -> None:
    async with private_redis() as server:
        client = server.client()
        try:
            projector = SignupsByDomain(client, prefix=settings.prefix)
            topic = topic_for(settings.prefix, Family.USERS)
            await client.config_set("maxmemory-policy", "allkeys-lru")
            with pytest.raises(EvictionUnsafe, match="allkeys-lru"):
                await projector.load_checkpoints([(topic, 0)])
            await client.config_set("maxmemory-policy", "volatile-lru")
            assert await projector.load_checkpoints([(topic, 0)]) == {}
        finally:
            await client.aclose()


async def test_reports_progress_where_reads_wait(redis: Redis, settings: Settings) -> None:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        prefix = f"{settings.prefix}-{secrets.token_hex(3)}"
        projector = SignupsByDomain(redis, prefix=prefix, progress=engine)
        topic = topic_for(settings.prefix, Family.USERS)
        progress = Progress(engine, prefix=settings.prefix)
        wanted = Position({(topic, 0): 4})
        reads = [(SignupsByDomain.name, (Family.USERS,))]
        assert not await progress.reached(reads, wanted)
        batch = [registration(f"u{i}@a.example", i, topic) for i in range(5)]
        await projector.apply(batch, {(topic, 0): 5})
        assert await progress.reached(reads, wanted)
    finally:
        await engine.dispose()
