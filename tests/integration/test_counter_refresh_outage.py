"""The counter hashes follow the read model through a Redis that refuses writes: likes
applied to PostgreSQL while Redis is out of memory leave the hashes behind, and once Redis
takes writes again the counts served equal PostgreSQL's within seconds, with no further
like to rewrite them. Every hash, written or filled, runs out after ``HASH_TTL_S``, so one
whose refresh was lost for good (a crash between commit and hook) is read from PostgreSQL
again within that bound."""

from __future__ import annotations

import asyncio

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.counters import HASH_TTL_S, CounterCache, Counts, Tally
from bloghub.events.articles import ArticlePublished
from bloghub.events.base import Event, registry
from bloghub.events.interactions import ArticleLiked
from bloghub.events.log import EventLog
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.interactions import InteractionsProjector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.settings import Settings
from tests.conftest import isolated, pg
from tests.faults import out_of_memory
from tests.private_redis import private_redis
from tests.support import append_events, until_applied, wait_until

ARTICLES = 8
LIKERS = 30
BEFORE = 10  # likers per article before Redis refuses writes


async def _stored(settings: Settings) -> dict[str, int]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT article_id::text AS a, like_cnt FROM interactions_g1.article_stats"
        )
    return {r["a"]: r["like_cnt"] for r in rows}


async def _served(counters: CounterCache, articles: list[str]) -> dict[str, int | None]:
    found = {a: await counters.get(a) for a in articles}
    return {a: None if t is None else t.counts.like_cnt for a, t in found.items()}


async def test_counts_refused_by_redis_are_served_once_it_takes_writes_again(
    run_id: str,
) -> None:
    author = new_id_str()
    articles = [new_id_str() for _ in range(ARTICLES)]
    users = [new_id_str() for _ in range(LIKERS)]

    def likes(by: list[str]) -> list[Event]:
        return [
            ArticleLiked(article_id=a, author_id=author, user_id=u) for u in by for a in articles
        ]

    published: list[Event] = [
        ArticlePublished(article_id=a, author_id=author, version=2, title="t", content="", tags=[])
        for a in articles
    ]
    async with private_redis() as server, isolated(run_id, "ixrefresh") as s:
        store, shared = server.client(), make_redis(s.redis_url.get_secret_value())
        counters = CounterCache(store, prefix=s.prefix)
        engine = projector_engine(s.sqlalchemy_url, pool_size=3)
        dead = DeadLetters(bootstrap=s.kafka_bootstrap, prefix=s.prefix, redis=shared)
        await dead.start()
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        runner = ProjectorRunner(
            InteractionsProjector(engine, counters=counters),
            config=RunnerConfig.from_settings(s),
            registry=registry,
            dead_letters=dead,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            await append_events(log, [*published, *likes(users[:BEFORE])])
            await until_applied(s, "interactions", ARTICLES * (1 + BEFORE))

            async def follows_the_read_model() -> bool:
                return await _served(counters, articles) == await _stored(s)

            await wait_until(follows_the_read_model, timeout_s=30)
            async with out_of_memory(store):
                await append_events(log, likes(users[BEFORE:]))
                await until_applied(s, "interactions", ARTICLES * (1 + LIKERS))
                assert await _served(counters, articles) == dict.fromkeys(articles, BEFORE)
                await asyncio.sleep(1.0)
            assert await _stored(s) == dict.fromkeys(articles, LIKERS)
            # Nothing more is appended: only the kept refresh can bring the hashes level.
            await wait_until(follows_the_read_model, timeout_s=15)
            for a in articles:
                assert 0 < await store.ttl(counters.key(a)) <= HASH_TTL_S
            # A reader's fill of a missing hash runs out too.
            await store.delete(counters.key(articles[0]))
            await counters.fill(articles[0], Tally(Counts(0, LIKERS, 0), author))
            assert 0 < await store.ttl(counters.key(articles[0])) <= HASH_TTL_S
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
            await log.close()
            await dead.close()
            await engine.dispose()
            await store.aclose()
            await shared.aclose()
