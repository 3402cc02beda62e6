"""The read-through cache on real Redis: single flight, and the fence a projector puts
around its commit, so no copy of rows read before the commit outlives it, however late
the copy arrives (the interleavings are replayed step by step with gated fills)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.cache import COUNTER_TTL_S, FENCE, FENCE_TTL_S, Cache, counter_key
from bloghub.adapters.redis.local_tier import channel
from bloghub.api.article_queries import ArticleQueries
from bloghub.api.consistency import Progress
from bloghub.events.articles import ArticleDrafted, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Event, Recorded
from bloghub.ids import new_id_str
from bloghub.projections.articles import ArticlesProjector
from bloghub.readmodels import PUBLISHED_TTL_S, published_key, published_view
from bloghub.settings import Settings
from tests.support import recorded


@pytest.fixture
async def cache(settings: Settings) -> AsyncIterator[Cache]:
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        yield Cache(redis, prefix=settings.prefix)
    finally:
        await redis.aclose()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings.sqlalchemy_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


class Article:
    """One article's events on a partition of its own (no other test's checkpoints)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = f"{settings.prefix}.cache-test-{secrets.token_hex(4)}"
        self.id, self.author = new_id_str(), new_id_str()
        self.offset = 0

    def events(self, *events: Event) -> tuple[list[Recorded], dict[tuple[str, int], int]]:
        batch = []
        for event in events:
            batch.append(recorded(event, topic=self.topic, partition=0, offset=self.offset))
            self.offset += 1
        return batch, {(self.topic, 0): self.offset}

    def drafted_and_published(self) -> tuple[list[Recorded], dict[tuple[str, int], int]]:
        ids = {"article_id": self.id, "author_id": self.author}
        return self.events(
            ArticleDrafted(**ids, version=1, title="t", content="c", tags=[]),
            ArticlePublished(**ids, version=2, title="t", content="c", tags=[]),
        )

    def withdrawn(self) -> tuple[list[Recorded], dict[tuple[str, int], int]]:
        return self.events(ArticleWithdrawn(article_id=self.id, author_id=self.author, version=3))


async def project(projector: ArticlesProjector, change: tuple[list[Recorded], Any]) -> None:
    """What the runner does with a batch: apply it (fence, commit) and lift the fences."""
    fresh = await projector.apply(*change)
    await projector.after_commit(fresh)


def counted(value: Any) -> tuple[list[int], Any]:
    calls: list[int] = []

    async def fill() -> Any:
        calls.append(1)
        return value

    return calls, fill


async def test_a_fill_is_stored_once_and_shared(cache: Cache) -> None:
    key = cache.key("t", secrets.token_hex(4))
    gate = asyncio.Event()
    calls: list[int] = []

    async def slow() -> dict[str, int]:
        calls.append(1)
        await gate.wait()
        return {"n": 1}

    readers = [asyncio.create_task(cache.get_or_fill(key, 60, slow)) for _ in range(20)]
    # Every reader's look-up (a Redis round trip each) finds the fill in flight: held
    # open long past a loaded machine's round trip.
    await asyncio.sleep(1.0)
    gate.set()
    assert await asyncio.gather(*readers) == [{"n": 1}] * 20
    assert len(calls) == 1  # one trip to the store for twenty readers
    again, fill = counted({"n": 2})
    assert await cache.get_or_fill(key, 60, fill) == {"n": 1}
    assert again == []


async def test_several_entries_are_looked_up_together_as_each_alone_would_be(
    cache: Cache, redis: Redis
) -> None:
    """``lookup_many``: what is cached is answered with its counter, what is not is filled
    and stored, and a fenced entry is answered from the store but never stored."""
    held, absent, fenced = (cache.key("t", secrets.token_hex(4)) for _ in range(3))
    await cache.get_or_fill(held, 60, counted({"n": "held"})[1])
    await cache.fence([fenced])
    filled: list[str] = []

    async def fill(key: str) -> dict[str, str]:
        filled.append(key)
        return {"n": key}

    found = await cache.lookup_many([held, absent, fenced], 60, fill)
    assert {key: entry.value for key, entry in found.items()} == {
        held: {"n": "held"},
        absent: {"n": absent},
        fenced: {"n": fenced},
    }
    assert sorted(filled) == sorted([absent, fenced])  # the held one was not filled again
    assert found[held].counter is not None
    assert found[fenced].counter is None  # no copy of it may be kept
    assert orjson.loads(await redis.get(absent) or b"null") == {"n": absent}
    assert await redis.get(fenced) == FENCE
    again = await cache.lookup_many([absent, held], 60, fill)
    assert again[absent].value == {"n": absent}
    assert len(filled) == 2  # now both were served from the cache


@pytest.mark.parametrize("age", ["small", "an hour of bumps"])
async def test_a_counter_that_expired_never_goes_back(
    cache: Cache, redis: Redis, settings: Settings, age: str
) -> None:
    """A counter left alone for its TTL (an hour) expires; bumped again, it starts from the
    clock, past what any process noted before it expired (a tier keeping a body noted at 5
    would otherwise keep it through changes announced as 1 and 2), and the change announced
    is the counter itself. Noted: a counter as small as one from before counters started from
    the clock, or one that started from the clock an hour before it was last bumped and was
    bumped a thousand times (its expiry came an hour after that last bump)."""
    key = cache.key("t", secrets.token_hex(4))
    seconds, micros = await redis.time()
    now_ms = seconds * 1000 + micros // 1000
    noted = 5 if age == "small" else now_ms - 2 * COUNTER_TTL_S * 1000 + 1000
    await redis.set(counter_key(key), noted)
    await redis.delete(counter_key(key))  # as its TTL would, after an hour unchanged

    listener = redis.pubsub()
    await listener.subscribe(channel(settings.prefix))
    try:
        await cache.fence([key])
        await cache.invalidate([key])
        announced: list[int] = []
        deadline = asyncio.get_running_loop().time() + 5
        while len(announced) < 2:
            assert asyncio.get_running_loop().time() < deadline, "no change announced"
            # None for the subscription's own confirmation, or nothing yet: ask again.
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                changes = orjson.loads(message["data"])
                announced += [counter for name, counter in changes if name == key]
    finally:
        await listener.aclose()
    stored = int(await redis.get(counter_key(key)) or 0)
    assert noted < announced[0] < announced[1] == stored


async def test_a_copy_read_before_the_commit_cannot_be_put_back(cache: Cache, redis: Redis) -> None:
    key = cache.key("t", secrets.token_hex(4))
    gate = asyncio.Event()

    async def old_rows() -> dict[str, str]:
        await gate.wait()  # the reader has read the old rows; the projector commits now
        return {"title": "old"}

    reader = asyncio.create_task(cache.get_or_fill(key, 60, old_rows))
    await asyncio.sleep(0.05)
    await cache.fence([key])  # just before the projector's commit
    gate.set()
    assert await reader == {"title": "old"}  # what it read, answered once...
    assert await redis.get(key) == FENCE  # ...but never stored

    # While fenced (the commit is done, the fence not yet lifted) readers go to the store.
    calls, new_rows = counted({"title": "new"})
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert len(calls) == 2
    assert 0 < await redis.ttl(key) <= FENCE_TTL_S  # a fence never lifted runs out

    await cache.invalidate([key])  # just after the commit: the fence is lifted
    calls, new_rows = counted({"title": "new"})
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert await cache.get_or_fill(key, 60, new_rows) == {"title": "new"}
    assert len(calls) == 1  # filled once, then served from the cache


async def test_a_withdrawn_article_read_before_the_commit_never_returns_from_the_cache(
    cache: Cache, engine: AsyncEngine, settings: Settings
) -> None:
    article = Article(settings)
    projector = ArticlesProjector(engine, cache=cache)
    await project(projector, article.drafted_and_published())
    reads = ArticleQueries(engine, Progress(engine, prefix=settings.prefix))
    key = published_key(cache, article.id)
    await cache.invalidate([key])  # the publish's pre-warm: start from a miss
    read, release = asyncio.Event(), asyncio.Event()

    async def published_then_held() -> dict[str, Any] | None:
        view = published_view(await reads.published(article.id))
        read.set()  # the reader has the published row...
        await release.wait()  # ...and is slow to store it
        return view

    reader = asyncio.create_task(cache.get_or_fill(key, PUBLISHED_TTL_S, published_then_held))
    await read.wait()
    await project(projector, article.withdrawn())  # fence, commit, lift: all done
    release.set()
    assert (await reader)["title"] == "t"  # what it read, answered once...

    async def store() -> dict[str, Any] | None:
        return published_view(await reads.published(article.id))

    # ...but a later reader is told the article is gone, not served the copy.
    assert await cache.get_or_fill(key, PUBLISHED_TTL_S, store) is None


class HeldAfterReading:
    """The engine of an instance that has lost its partitions and is slow: its reads (the
    pre-warm's) pause once the rows are in hand, before anything is stored; its batch
    transactions run as usual."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.read, self.release = asyncio.Event(), asyncio.Event()

    def begin(self) -> Any:
        return self._engine.begin()

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            yield conn
        self.read.set()
        await self.release.wait()


async def test_a_stale_prewarm_cannot_bring_back_a_withdrawn_article(
    cache: Cache, engine: AsyncEngine, settings: Settings
) -> None:
    article = Article(settings)
    held = HeldAfterReading(engine)
    zombie = ArticlesProjector(cast(AsyncEngine, held), cache=cache)
    owner = ArticlesProjector(engine, cache=cache)
    warming = asyncio.create_task(project(zombie, article.drafted_and_published()))
    await held.read.wait()  # the zombie has read the published row for its pre-warm
    await project(owner, article.withdrawn())  # the partition's new owner withdraws it
    held.release.set()
    await warming
    reads = ArticleQueries(engine, Progress(engine, prefix=settings.prefix))
    calls: list[int] = []

    async def store() -> dict[str, Any] | None:
        calls.append(1)
        return published_view(await reads.published(article.id))

    assert await cache.get_or_fill(published_key(cache, article.id), 60, store) is None
    assert calls == [1]  # read from the store: the pre-warm put nothing back
