"""The ranking job on the real PostgreSQL and Redis: what ranks and in which order, the
streamed heap against a full sort, the fenced write, the pre-cached details."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import structlog
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import create_generation
from bloghub.ranking import job as job_module
from bloghub.ranking.job import LockLost, RankingJob, run_ranking
from bloghub.readmodels import published_key
from tests.ranking_rows import Article, add_article, ranking_job, ranking_store
from tests.support import wait_until


async def result(redis: Redis, job: RankingJob) -> dict[str, Any]:
    raw = await redis.hgetall(job.keys.result)
    out: dict[str, Any] = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    out["entries"] = orjson.loads(out.pop("body", b"[]"))
    return out


def expected_score(a: Article, at: float, weight: float = 2.0, gravity: float = 1.5) -> float:
    hours = (datetime.fromtimestamp(at, UTC) - a.published_at).total_seconds() / 3600
    return float((a.likes + a.collects * weight - 1) / (hours + 2) ** gravity)


async def test_only_visible_articles_of_the_window_rank_scored_from_their_publish_time(
    run_id: str,
) -> None:
    async with ranking_store(run_id, "rank_what") as settings:
        fresh = await add_article(settings, hours_ago=1, likes=3, collects=1, title="Fresh")
        older = await add_article(settings, hours_ago=5, likes=10, title="Older")
        hidden = await add_article(settings, hours_ago=1, likes=1000, visible=False)
        stale = await add_article(settings, hours_ago=24 * 8, likes=1000)
        async with ranking_job(settings, "A") as job:
            assert await job.lock.hold()
            assert await job.run_once() == 1
            got = await result(job.redis, job)

        ids = [e["id"] for e in got["entries"]]
        assert ids == [fresh.id, older.id]
        assert hidden.id not in ids
        assert stale.id not in ids
        at = float(got["computed_at"])
        # Rows written just now, publish events hours old: the hours are the events'.
        for entry, article in zip(got["entries"], [fresh, older], strict=True):
            assert math.isclose(entry["score"], expected_score(article, at), rel_tol=1e-9)
        assert got["entries"][0]["title"] == "Fresh"
        assert [got["entries"][0][k] for k in ("read_cnt", "like_cnt", "collect_cnt")] == [0, 3, 1]


async def test_a_withdrawn_article_leaves_the_next_ranking(run_id: str) -> None:
    async with ranking_store(run_id, "rank_hide") as settings:
        first = await add_article(settings, hours_ago=1, likes=50)
        second = await add_article(settings, hours_ago=1, likes=5)
        async with ranking_job(settings, "A") as job:
            assert await job.lock.hold()
            await job.run_once()
            redis = job.redis
            assert [e["id"] for e in (await result(redis, job))["entries"]] == [first.id, second.id]
            admin = make_engine(settings.sqlalchemy_url, pool_size=1)
            async with admin.begin() as conn:
                await conn.exec_driver_sql(
                    "UPDATE interactions_g1.article_stats SET visible = false "
                    f"WHERE article_id = '{first.id}'"
                )
            await admin.dispose()
            await job.run_once()
            assert [e["id"] for e in (await result(redis, job))["entries"]] == [second.id]


async def test_the_streamed_heap_equals_a_full_sort_across_many_pages(run_id: str) -> None:
    async with ranking_store(
        run_id, "rank_pages", ranking_page_rows=10, ranking_top_n=17
    ) as settings:
        same_time = datetime.now(UTC) - timedelta(hours=2)
        articles = [
            # Many share a publish time (keyset pages must not skip or repeat them) and
            # many share a score (ties go to the smaller id).
            await add_article(
                settings,
                hours_ago=0,
                likes=i % 4,
                collects=i % 3,
                published_at=same_time if i % 2 else same_time - timedelta(hours=i % 5),
            )
            for i in range(73)
        ]
        async with ranking_job(settings, "A") as job:
            assert await job.lock.hold()
            await job.run_once()
            got = await result(job.redis, job)
        at = float(got["computed_at"])
        expected = sorted(articles, key=lambda a: (-expected_score(a, at), a.id))[:17]
        assert [e["id"] for e in got["entries"]] == [a.id for a in expected]


async def test_a_holder_that_lost_its_lock_cannot_overwrite_the_new_holders_result(
    run_id: str,
) -> None:
    async with ranking_store(run_id, "rank_fence", ranking_lock_ttl_s=0.5) as settings:
        await add_article(settings, hours_ago=1, likes=3)
        async with ranking_job(settings, "A") as a, ranking_job(settings, "B") as b:
            redis = a.redis
            assert await a.lock.hold()
            assert not await b.lock.hold()

            async def lock_ran_out() -> bool:
                return not await redis.exists(a.keys.lock)

            # A pauses (it renews nothing) past its TTL; B takes the lock over.
            await wait_until(lock_ran_out, timeout_s=10)
            assert await b.lock.hold()
            assert b.lock.token > a.lock.token
            assert await b.run_once() == 1

            # A wakes up and writes what it computed: refused, B's result stands.
            assert await a.lock.publish(b'[{"id": "stale"}]', 0.0) == 0
            try:
                await a.run_once()
                raise AssertionError("a holder without the lock published")
            except LockLost:
                pass
            got = await result(redis, a)
            assert got["holder"] == b"B"
            assert got["version"] == b"1"
            assert got["entries"][0]["id"] != "stale"
            assert not await a.lock.hold()


async def test_the_first_entries_details_are_pre_cached_unless_a_rebuild_runs(
    run_id: str,
) -> None:
    async with ranking_store(run_id, "rank_warm", ranking_precache=2) as settings:
        top = [await add_article(settings, hours_ago=1, likes=100 - i) for i in range(3)]
        async with ranking_job(settings, "A") as job:
            redis = job.redis
            cache = job.cache
            assert cache is not None
            assert await job.lock.hold()
            await job.run_once()
            cached = [await redis.get(published_key(cache, a.id)) for a in top]
            assert cached[2] is None
            views = [orjson.loads(c) for c in cached[:2] if c is not None]
            assert [v["id"] for v in views] == [top[0].id, top[1].id]
            assert views[0]["title"] == "A title"

            await redis.delete(*(published_key(cache, a.id) for a in top))
            admin = make_engine(settings.sqlalchemy_url, pool_size=1)
            async with admin.begin() as conn:
                await create_generation(conn, "articles", 2, activate=False)
            await admin.dispose()
            await job.run_once()
            assert [await redis.get(published_key(cache, a.id)) for a in top] == [None] * 3


async def test_a_job_waiting_for_a_store_says_where_it_looks_and_which_setting_names_it(
    run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said only "the database is not reachable" (or a Redis ConnectionError), every
    few seconds, naming neither the address nor the setting an operator would fix."""
    async with ranking_store(run_id, "rank_where") as settings:
        broken = {
            "ranking.redis_unavailable": (
                {"redis_url": SecretStr("redis://127.0.0.1:1/0")},
                {"at": "redis://127.0.0.1:1/0", "setting": "BLOGHUB_REDIS_URL"},
            ),
            "ranking.database_unavailable": (
                {
                    "database_url": SecretStr(
                        "postgresql+asyncpg://bloghub:hidden@127.0.0.1:1/nowhere"
                    )
                },
                {"setting": "BLOGHUB_DATABASE_URL"},
            ),
        }
        for event, (update, said) in broken.items():
            stop = asyncio.Event()
            with capture_logs() as lines:
                # A fresh logger: the module's may be bound already, to the processors of before.
                monkeypatch.setattr(job_module, "log", structlog.get_logger(job_module.__name__))
                running = asyncio.create_task(run_ranking(settings.model_copy(update=update), stop))

                async def told(event: str = event) -> bool:
                    return any(line["event"] == event for line in lines)

                await wait_until(told, timeout_s=30)
                stop.set()
                await asyncio.wait_for(running, timeout=30)
            line = next(line for line in lines if line["event"] == event)
            assert said.items() <= line.items(), line
            assert "127.0.0.1:1" in line["at"], line
            assert "hidden" not in line["at"], line
