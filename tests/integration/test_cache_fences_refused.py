"""The cache a projector owns, with Redis refusing its writes around a commit (a Redis of the
test's own): a fence that cannot be set fails the batch before its commit, and a lift that
fails after it is retried until it lands; at no point is the entry the commit made stale
served again, by Redis or by an in-process tier."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis.cache import FENCE, Cache, counter_key
from bloghub.adapters.redis.local_tier import LocalTier, follow_changes
from bloghub.api.article_queries import ArticleQueries
from bloghub.api.consistency import Progress
from bloghub.errors import Transient
from bloghub.projections.articles import ArticlesProjector
from bloghub.readmodels import PUBLISHED_TTL_S, published_key, published_view
from bloghub.settings import Settings
from tests.faults import out_of_memory
from tests.integration.test_cache import Article, project
from tests.private_redis import PrivateRedis, private_redis
from tests.support import wait_until

PASSWORD = secrets.token_hex(8)


@dataclass
class Rig:
    """A projector whose cache writes as its own Redis user (so a test can take its rights
    away while readers go on), readers' cache, and an in-process tier following the
    invalidation channel, all on a Redis server of the test's own."""

    server: PrivateRedis
    admin: Redis
    projector: ArticlesProjector
    readers: Cache
    tier: LocalTier
    reads: ArticleQueries

    @property
    def cache(self) -> Cache:
        assert self.projector.cache is not None
        return self.projector.cache

    async def published(self, article_id: str) -> dict[str, Any] | None:
        return published_view(await self.reads.published(article_id))

    async def served(self, article_id: str) -> dict[str, Any] | None:
        """What an anonymous reader gets: the cached copy, else the read model's."""
        key = published_key(self.readers, article_id)
        found: dict[str, Any] | None = await self.readers.get_or_fill(
            key, PUBLISHED_TTL_S, lambda: self.published(article_id)
        )
        return found

    async def held_by_tier(self, article_id: str) -> None:
        """Build the article's body as a hot read does and keep it in the tier."""
        key = published_key(self.readers, article_id)
        build = self.tier.begin()
        found = await self.readers.lookup(key, PUBLISHED_TTL_S, lambda: self.published(article_id))
        assert found.value is not None
        assert found.counter is not None
        assert self.tier.put(article_id, orjson.dumps(found.value), {key: found.counter}, build)

    @contextlib.asynccontextmanager
    async def projector_refused(self) -> AsyncIterator[None]:
        """Redis refuses every command of the projector's user while the block runs."""
        await self.admin.acl_setuser("projector", enabled=True, reset=False, categories=["-@all"])
        try:
            yield
        finally:
            await self.admin.acl_setuser(
                "projector", enabled=True, reset=False, categories=["+@all"]
            )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings.sqlalchemy_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def rig(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Rig]:
    async with private_redis() as server:
        admin = server.client()
        await admin.acl_setuser(
            "projector",
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["~*"],
            channels=["*"],
            categories=["+@all"],
        )
        own = Redis.from_url(server.url, username="projector", password=PASSWORD)
        readers = server.client()
        tier = LocalTier(max_entries=100, max_bytes=1 << 20, ttl_s=3600)
        stop = asyncio.Event()
        following = asyncio.create_task(follow_changes(tier, readers, settings.prefix, stop))
        try:
            await wait_until(_live(tier), timeout_s=10)
            yield Rig(
                server,
                admin,
                ArticlesProjector(engine, cache=Cache(own, prefix=settings.prefix)),
                Cache(readers, prefix=settings.prefix),
                tier,
                ArticleQueries(engine, Progress(engine, prefix=settings.prefix)),
            )
        finally:
            stop.set()
            await following
            for client in (own, readers, admin):
                await client.aclose()


def _live(tier: LocalTier) -> Callable[[], Awaitable[bool]]:
    async def subscribed() -> bool:
        return tier.live

    return subscribed


async def test_a_fence_redis_refuses_fails_the_batch_before_its_commit(
    rig: Rig, settings: Settings
) -> None:
    article = Article(settings)
    await project(rig.projector, article.drafted_and_published())
    assert (await rig.served(article.id) or {}).get("title") == "t"
    await rig.held_by_tier(article.id)
    withdrawn = article.withdrawn()

    async with out_of_memory(rig.admin):
        for _ in range(3):  # as the runner retries: nothing is committed meanwhile
            with pytest.raises(Transient):
                await rig.projector.apply(*withdrawn)
        assert await rig.published(article.id) is not None
        assert await rig.projector.load_checkpoints([(article.topic, 0)]) == {(article.topic, 0): 2}

    # Redis is back: the batch applies, and from its commit on nothing serves the article.
    await project(rig.projector, withdrawn)
    assert await rig.published(article.id) is None
    assert await rig.served(article.id) is None
    await wait_until(_dropped(rig.tier, article.id), timeout_s=5)
    assert await rig.admin.get(published_key(rig.readers, article.id)) is None


async def test_a_lift_redis_refuses_after_the_commit_is_retried_until_it_lands(
    rig: Rig, settings: Settings
) -> None:
    article = Article(settings)
    await project(rig.projector, article.drafted_and_published())
    key = published_key(rig.readers, article.id)
    old = await rig.served(article.id)
    assert old is not None
    await rig.held_by_tier(article.id)

    fresh = await rig.projector.apply(*article.withdrawn())  # fenced, then committed
    fenced_at = int(await rig.admin.get(counter_key(key)) or 0)
    await wait_until(_dropped(rig.tier, article.id), timeout_s=5)
    async with rig.projector_refused():
        await rig.projector.after_commit(fresh)  # the lift fails: it must not raise
        assert rig.cache.lifts_pending > 0
        assert await rig.admin.get(key) == FENCE
        assert await rig.served(article.id) is None  # fenced: readers read the store

        # A reader met the fence and read the row just before the commit; before it can
        # store that copy, the fence runs out (a lift that did not land lifts nothing).
        async def read_before_the_commit() -> dict[str, Any]:
            await rig.admin.delete(key)
            return old

        found = await rig.readers.lookup(key, PUBLISHED_TTL_S, read_before_the_commit)
        assert found.value == old  # answered once, as read...
        assert found.counter is None  # ...kept by no tier...
        assert await rig.admin.get(key) is None  # ...and never stored
        assert await rig.served(article.id) is None
        await asyncio.sleep(0.5)  # retries go on failing meanwhile
        assert rig.cache.lifts_pending > 0

    await wait_until(_lifted(rig.cache), timeout_s=15)
    assert int(await rig.admin.get(counter_key(key)) or 0) > fenced_at
    assert await rig.served(article.id) is None
    assert rig.tier.get(article.id) is None


async def test_a_late_lift_leaves_a_newer_fence_standing(rig: Rig, settings: Settings) -> None:
    article = Article(settings)
    await project(rig.projector, article.drafted_and_published())
    key = published_key(rig.readers, article.id)
    fresh = await rig.projector.apply(*article.withdrawn())
    async with rig.projector_refused():
        await rig.projector.after_commit(fresh)
        # Meanwhile another instance (the partition's new owner) fences the entry for a
        # batch it has not committed yet.
        await rig.readers.fence([key])
    await wait_until(_lifted(rig.cache), timeout_s=15)
    # The retried lift must not lift that fence: until the newer batch commits, a copy
    # read now could be what it is about to change.
    assert await rig.admin.get(key) == FENCE


def _dropped(tier: LocalTier, name: str) -> Callable[[], Awaitable[bool]]:
    async def gone() -> bool:
        return tier.get(name) is None

    return gone


def _lifted(cache: Cache) -> Callable[[], Awaitable[bool]]:
    async def landed() -> bool:
        return cache.lifts_pending == 0

    return landed
