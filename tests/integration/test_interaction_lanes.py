"""The interactions projector's two lanes (the articles family and the interactions family)
write the same counter rows at once without deadlocking: a batch with article events takes
its rows, new and existing alike, in the same id order as the counts' one statement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from bloghub.events.articles import ArticlePublished
from bloghub.events.interactions import ArticleLiked
from bloghub.ids import new_id_str
from bloghub.projections import interaction_writes as w
from bloghub.projections.interactions import InteractionsProjector, claims_of
from bloghub.projections.postgres_sink import projector_engine
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import recorded


@pytest.fixture
async def rig(run_id: str) -> AsyncIterator[tuple[Settings, InteractionsProjector]]:
    async with isolated(run_id, "ixlanes") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=3)
        try:
            yield s, InteractionsProjector(engine, generation=1)
        finally:
            await engine.dispose()


async def _blocked_on_a_lock(dsn: str, within_s: float = 10.0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = asyncio.get_running_loop().time() + within_s
        while asyncio.get_running_loop().time() < deadline:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the likes' batch never waited for the publishes' rows")
    finally:
        await conn.close()


async def test_a_publish_batch_and_a_like_batch_on_new_and_existing_rows_both_commit(
    rig: tuple[Settings, InteractionsProjector],
) -> None:
    s, projector = rig
    author = new_id_str()
    low, high = sorted([new_id_str(), new_id_str()])
    now = datetime.now(UTC)

    def like(article: str) -> ArticleLiked:
        return ArticleLiked(article_id=article, author_id=author, user_id=new_id_str())

    # A like applied before its article's publish made the higher article's row; the lower
    # one has none yet.
    first = recorded(like(high), topic="interactions", partition=0, offset=0)
    await projector.apply([first], {("interactions", 0): 1})
    publishes = [
        ArticlePublished(article_id=a, author_id=author, version=1, title="t", content="", tags=[])
        for a in (low, high)
    ]
    likes = [
        recorded(like(a), topic="interactions", partition=0, offset=i)
        for i, a in enumerate((low, high), start=1)
    ]
    async with projector.engine.begin() as raw:
        conn = await raw.execution_options(schema_translate_map={None: projector.schema})
        # The articles lane has taken its rows; the interactions lane's batch comes now and
        # waits for them (it inserts the lower row, then wants the higher one).
        await w.claim_counts(conn, claims_of([(e, now) for e in publishes], {}))
        liking = asyncio.create_task(projector.apply(likes, {("interactions", 0): 3}))
        await _blocked_on_a_lock(s.asyncpg_dsn)
        for event in publishes:
            await w.apply_visibility(conn, event, now)
    # The articles lane committed; the likes then land too, within the bound.
    await asyncio.wait_for(liking, timeout=10)
    db = await asyncpg.connect(s.asyncpg_dsn)
    try:
        rows = await db.fetch(
            "SELECT article_id::text AS a, visible, like_cnt FROM interactions_g1.article_stats"
        )
    finally:
        await db.close()
    assert {r["a"]: (r["visible"], r["like_cnt"]) for r in rows} == {
        low: (True, 1),
        high: (True, 2),
    }
