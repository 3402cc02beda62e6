"""The feed (pull on read) against the same work done directly on the read model's tables.

One fresh database migrated to head; the social read model is filled with SQL (no log
needed for what is measured):

* read: a reader follows ``authors`` authors with ``per_author`` published articles each.
  The API's feed query (``SocialQueries.feed`` on the app's engine, through the active
  generation, keyset page of 20, first page and a page deep in the feed) against the same
  SQL sent straight through asyncpg. p50/p99 over ``reads`` reads each, interleaved.
* write: an author with ``followers`` followers publishes. The social projector's cost
  (``SocialProjector.apply``: checkpoint lock, the feed row, checkpoint save, one
  transaction) for one ``article.published`` against the same rows written directly; and,
  for the choice of pull, what fan-out on write would have cost for that author (one
  ``INSERT … SELECT`` of a row per follower into a feed table, rolled back).

Correctness: the API's page must equal the direct query's, newest first, for both pages.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from tests.support import recorded

from bench.support import Check, Figure, Report, console, workspace
from bloghub.api.consistency import Progress
from bloghub.api.social_queries import SocialQueries
from bloghub.events.articles import ArticlePublished
from bloghub.ids import new_id_str
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.social import SocialProjector
from bloghub.settings import Settings

NAME = "feed"
PAGE = 20
S = "social_g1"

DIRECT_FEED = f"""
SELECT n.article_id, n.published_at FROM {S}.follows f
CROSS JOIN LATERAL (
  SELECT a.article_id, a.published_at FROM {S}.feed_articles a
  WHERE a.author_id = f.followee_id AND a.visible
    AND (a.published_at, a.article_id) < ($2::timestamptz, $3::uuid)
  ORDER BY a.published_at DESC, a.article_id DESC LIMIT $4
) n
WHERE f.follower_id = $1
ORDER BY n.published_at DESC, n.article_id DESC LIMIT $4
"""
DIRECT_WRITE = f"""
INSERT INTO {S}.feed_articles (article_id, author_id, version, published_at, visible)
VALUES ($1, $2, 2, now(), true)
ON CONFLICT (article_id) DO UPDATE SET version = excluded.version, visible = true
WHERE {S}.feed_articles.version < excluded.version
"""
DIRECT_CHECKPOINT = """
INSERT INTO public.projector_checkpoints (projector, generation, topic, partition, next_offset)
VALUES ('social-direct', 1, 'direct', 0, $1)
ON CONFLICT (projector, generation, topic, partition) DO UPDATE SET next_offset = $1
"""
FAN_OUT = f"""
CREATE TEMP TABLE IF NOT EXISTS feed_items
  (reader_id uuid, published_at timestamptz, article_id uuid,
   PRIMARY KEY (reader_id, published_at, article_id));
INSERT INTO feed_items SELECT follower_id, now(), gen_random_uuid()
FROM {S}.follows WHERE followee_id = '{{author}}'
"""


@dataclass(frozen=True, slots=True)
class Params:
    authors: int = 1_000
    per_author: int = 20
    followers: int = 100_000
    reads: int = 300
    writes: int = 200
    fan_outs: int = 5


async def seed(conn: asyncpg.Connection, p: Params) -> tuple[str, str]:
    """The reader (following ``authors`` authors) and the popular author."""
    reader, star = new_id_str(), new_id_str()
    await conn.execute(
        f"""
        INSERT INTO {S}.follows (follower_id, followee_id, followed_at)
        SELECT $1::uuid, gen_random_uuid(), now() - g * interval '1 second'
        FROM generate_series(1, $2) g;
        """,
        reader,
        p.authors,
    )
    await conn.execute(
        f"""
        INSERT INTO {S}.feed_articles (article_id, author_id, version, published_at, visible)
        SELECT gen_random_uuid(), f.followee_id, 2,
               now() - (random() * 365 * 86400) * interval '1 second', random() > 0.05
        FROM {S}.follows f, generate_series(1, $2) g WHERE f.follower_id = $1
        """,
        reader,
        p.per_author,
    )
    await conn.execute(
        f"""
        INSERT INTO {S}.follows (follower_id, followee_id, followed_at)
        SELECT gen_random_uuid(), $1::uuid, now() FROM generate_series(1, $2)
        """,
        star,
        p.followers,
    )
    await conn.execute(f"ANALYZE {S}.follows; ANALYZE {S}.feed_articles")
    return reader, star


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


async def timed(step: Awaitable[Any]) -> tuple[float, Any]:
    """The time ``step`` (a coroutine not started yet) takes, and what it gives."""
    start = time.perf_counter()
    result = await step
    return (time.perf_counter() - start) * 1000, result


async def measure_reads(
    settings: Settings, conn: asyncpg.Connection, reader: str, p: Params, report: Report
) -> None:
    engine = projector_engine(settings.sqlalchemy_url, pool_size=2, app="bench-feed")
    api = SocialQueries(engine, Progress(engine, prefix=settings.prefix))
    try:
        # Walk eleven pages with the API, noting where each began for the direct query.
        walked: list[tuple[str | None, tuple[datetime, str], Any]] = []
        cursor: str | None = None
        bound = (datetime(9999, 1, 1, tzinfo=UTC), "ffffffff-ffff-ffff-ffff-ffffffffffff")
        for _ in range(11):
            page = await api.feed(reader, PAGE, cursor)
            walked.append((cursor, bound, page))
            last = page.items[-1]
            cursor, bound = page.next_cursor, (last.published_at, str(last.article_id))
        pages = {"first page": walked[0], "page 11": walked[10]}
        for label, (cursor, bound, expected) in pages.items():
            samples: dict[str, list[float]] = {"api": [], "direct": []}
            direct_rows: list[Any] = []
            for _ in range(p.reads):
                ms, _page = await timed(api.feed(reader, PAGE, cursor))
                samples["api"].append(ms)
                ms, direct_rows = await timed(
                    conn.fetch(DIRECT_FEED, reader, bound[0], bound[1], PAGE + 1)
                )
                samples["direct"].append(ms)
            same = [str(r.article_id) for r in expected.items] == [
                str(r["article_id"]) for r in direct_rows[:PAGE]
            ]
            report.checks.append(
                Check(f"feed {label}: API page equals the direct query's", same, f"{PAGE} rows")
            )
            _figures(report, f"feed read, {label}", samples)
    finally:
        await engine.dispose()


def _figures(report: Report, what: str, samples: dict[str, list[float]]) -> None:
    (api50, api99), (raw50, raw99) = quantiles(samples["api"]), quantiles(samples["direct"])
    report.figures += [
        Figure(f"{what}: p50 (API query)", api50, "ms", detail=f"direct {raw50:.2f} ms"),
        Figure(f"{what}: p99 (API query)", api99, "ms", detail=f"direct {raw99:.2f} ms"),
        Figure(f"{what}: p50 API / direct", api50 / raw50, "x"),
    ]
    report.raw[what] = {"api": samples["api"], "direct": samples["direct"]}


async def direct_write(conn: asyncpg.Connection, author: str, next_offset: int) -> None:
    """The rows the projector writes for one publish, and its checkpoint, by hand."""
    async with conn.transaction():
        await conn.execute(DIRECT_WRITE, new_id_str(), author)
        await conn.execute(DIRECT_CHECKPOINT, next_offset)


async def measure_writes(
    settings: Settings, conn: asyncpg.Connection, star: str, p: Params, report: Report
) -> None:
    engine = projector_engine(settings.sqlalchemy_url, pool_size=2, app="bench-feed")
    projector = SocialProjector(engine)
    samples: dict[str, list[float]] = {"api": [], "direct": []}
    try:
        for offset in range(p.writes):
            event = ArticlePublished(
                article_id=new_id_str(), author_id=star, version=2, title="t", content="", tags=[]
            )
            rec = recorded(event, topic="bench.articles", partition=0, offset=offset)
            ms, _ = await timed(projector.apply([rec], {("bench.articles", 0): offset + 1}))
            samples["api"].append(ms)
            ms, _ = await timed(direct_write(conn, star, offset + 1))
            samples["direct"].append(ms)
    finally:
        await engine.dispose()
    what = f"publish by an author with {p.followers:,} followers"
    (api50, api99), (raw50, raw99) = quantiles(samples["api"]), quantiles(samples["direct"])
    report.figures += [
        Figure(f"{what}: p50 (projector)", api50, "ms", detail=f"direct {raw50:.2f} ms"),
        Figure(f"{what}: p99 (projector)", api99, "ms", detail=f"direct {raw99:.2f} ms"),
        Figure(f"{what}: p50 projector / direct", api50 / raw50, "x"),
    ]
    report.raw[what] = samples
    fan: list[float] = []
    for _ in range(p.fan_outs):
        tx = conn.transaction()
        await tx.start()
        ms, _ = await timed(conn.execute(FAN_OUT.replace("{author}", star)))
        await tx.rollback()
        fan.append(ms)
    report.figures.append(
        Figure(
            f"{what}: fan-out on write instead (not used)",
            statistics.median(fan),
            "ms",
            detail=f"{p.followers:,} feed rows in one INSERT … SELECT, median of {p.fan_outs}",
        )
    )
    report.raw["fan_out_ms"] = fan
    rows = await conn.fetchval(f"SELECT count(*) FROM {S}.feed_articles WHERE author_id = $1", star)
    report.checks.append(
        Check("each publish left one feed row", rows == 2 * p.writes, f"{rows} rows")
    )


async def run(params: Params = Params()) -> Report:
    report = Report(
        name=NAME,
        title="feed: pull on read, API query and projector against the tables directly",
        params=asdict(params),
    )
    async with workspace(NAME, migrate=True) as ws:
        conn = await asyncpg.connect(ws.settings.asyncpg_dsn)
        try:
            reader, star = await seed(conn, params)
            console.print(f"[dim]{NAME}: seeded {ws.database}[/]")
            await measure_reads(ws.settings, conn, reader, params, report)
            await measure_writes(ws.settings, conn, star, params, report)
        finally:
            await conn.close()
    return report
