"""Rows of the read models the ranking reads, written directly: the counters projector is
not what these tests are about, only what its table holds."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import create_generation
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.cache import Cache
from bloghub.ids import new_id_str
from bloghub.ranking.job import RankingConfig, RankingJob
from bloghub.settings import Settings
from tests.conftest import isolated

READ_MODELS = ("interactions", "articles", "users")


async def create_read_models(settings: Settings) -> None:
    engine = make_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            for projector in READ_MODELS:
                await create_generation(conn, projector, 1, activate=True)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def ranking_store(run_id: str, name: str, **overrides: object) -> AsyncIterator[Settings]:
    """An isolated database whose interactions, articles and users generations are active;
    the run's Redis keys are removed afterwards."""
    async with isolated(run_id, name, **overrides) as settings:
        await create_read_models(settings)
        try:
            yield settings
        finally:
            redis = make_redis(settings.redis_url.get_secret_value())
            async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
                await redis.delete(key)
            await redis.aclose()


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    author_id: str
    published_at: datetime
    likes: int
    collects: int


async def add_article(
    settings: Settings,
    *,
    hours_ago: float,
    likes: int = 0,
    collects: int = 0,
    reads: int = 0,
    visible: bool = True,
    title: str = "A title",
    author_id: str | None = None,
    published_at: datetime | None = None,
) -> Article:
    """A published (or, not visible, withdrawn) article and its counters, its publish
    event ``hours_ago`` before now."""
    article_id, author = new_id_str(), author_id or new_id_str()
    at = published_at or datetime.now(UTC) - timedelta(hours=hours_ago)
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute(
            "INSERT INTO interactions_g1.article_stats (article_id, author_id, published_at,"
            " visible, read_cnt, like_cnt, collect_cnt) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *(article_id, author, at, visible, reads, likes, collects),
        )
        await conn.execute(
            "INSERT INTO articles_g1.articles (id, author_id, version, status, title, content,"
            " tags, created_at, updated_at, published_version, published_title,"
            " published_content, published_tags, published_at)"
            " VALUES ($1, $2, 2, $3, $4, 'text', $5, $6, $6, 2, $4, 'text', $5, $6)",
            *(article_id, author, "published" if visible else "withdrawn", title, ["t"], at),
        )
    finally:
        await conn.close()
    return Article(article_id, author, at, likes, collects)


@contextlib.asynccontextmanager
async def ranking_job(settings: Settings, holder: str) -> AsyncIterator[RankingJob]:
    """A job as ``bloghub rank`` builds it, named ``holder``, with clients of its own."""
    engine = make_engine(settings.sqlalchemy_url, pool_size=2)
    redis = make_redis(settings.redis_url.get_secret_value())
    job = RankingJob(
        RankingConfig.from_settings(settings),
        engine=engine,
        redis=redis,
        cache=Cache(redis, prefix=settings.prefix),
        prefix=settings.prefix,
        holder=holder,
    )
    try:
        yield job
    finally:
        await redis.aclose()
        await engine.dispose()
        await job.engines.dispose()
