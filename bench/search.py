"""Search: the search projector's documents/s against the ``_bulk`` API alone with the same
documents, same run; then search latency (p50/p99) at half the maximum rate over
100,000 published articles (``--articles`` to go lower).

Articles have mixed Chinese and English text and five tags out of fifty. The first
``PROJECTED`` of them (20,000) go to a fresh prefix's articles topic. Then, in this order:

* bulk alone: the very documents the projector makes (folded here from the same events,
  before the clock starts) sent with ``_bulk`` in requests of the projector's batch size,
  as many at once as the projector has lanes, as ``create`` actions, into an index of the
  same mappings;
* projector: the real runtime (``run_projectors(["search"])``: runner, lanes, scripted
  updates with the document's versions checked in the shard, checkpoints in Postgres),
  timed from its first checkpoint to the last, so group join is left out; done when its
  checkpoints sum to the number of events;
* the rest of the articles, loaded with ``_bulk`` straight into the projector's index (the
  same documents the projector would make; going through Kafka and the projector would
  only add minutes the query half does not measure).

Then the API runs under uvicorn (one process, uvloop, httptools) and ``wrk`` drives
``GET /v1/search/articles`` with two queries (Chinese, English) over the whole index:
windows at the maximum rate (closed loop), then paced at half of it, whose p50/p99 are the
figures; beside them the median time OpenSearch reports for the same request body alone.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

import asyncpg
from opensearchpy import AsyncOpenSearch

import bloghub.events.catalog  # noqa: F401  (registers every event type)
from bench.http import Target, bloghub_env, ensure_wrk, run_wrk, uvicorn_server
from bench.support import ARTIFACTS, Check, Figure, Report, console, rate, workspace
from bloghub.adapters.opensearch import bulk_conflicts, make_opensearch
from bloghub.adapters.search_indexes import ARTICLES, ARTICLES_BODY, index_name
from bloghub.api.search_queries import articles_request
from bloghub.events.articles import ArticlePublished
from bloghub.events.base import Event, Recorded, envelop
from bloghub.events.log import EventLog
from bloghub.ids import new_id_str
from bloghub.projections.search import empty_article, fold_article
from bloghub.projections.search_sink import BULK_TIMEOUT_S
from bloghub.projections.worker import run_projectors
from bloghub.settings import Settings

NAME = "search"
GOAL_RATIO = 0.5
ZH = [
    "数据",
    "迁移",
    "系统",
    "架构",
    "性能",
    "优化",
    "分布式",
    "缓存",
    "数据库",
    "索引",
    "搜索",
    "引擎",
    "消息",
    "队列",
    "事务",
    "日志",
]
EN = [
    "migration",
    "database",
    "index",
    "search",
    "engine",
    "cache",
    "queue",
    "stream",
    "event",
    "log",
    "replay",
    "partition",
    "latency",
    "throughput",
    "kafka",
    "postgres",
    "redis",
    "analyzer",
    "stemming",
    "tokenizer",
]
TAGS = [f"tag{i:02}" for i in range(50)]
CHECKPOINT_SUM = (
    "SELECT coalesce(sum(next_offset), 0) FROM public.projector_checkpoints "
    "WHERE projector = $1 AND generation = 1"
)
QUERIES = {"zh": "数据迁移", "en": "database migrations"}
# Articles that go through Kafka and the projector (and _bulk alone): enough for steady
# documents/s, few enough to leave the run minutes, not an hour, on a small machine.
PROJECTED = 20_000
# Documents made and sent at a time when loading the articles the projector does not index.
LOAD_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class Params:
    articles: int = 100_000  # searched over
    projected: int = PROJECTED  # the first of them, through the projector and _bulk alone
    batch: int = 2_000  # the runner's batch_max_events
    lanes: int = 2  # the runner's apply_concurrency
    connections: int = 4
    duration_s: float = 8.0
    warmup_s: float = 2.0


def vocabulary(rng: random.Random) -> list[str]:
    """2,000 made-up Latin words: the common text the named words are sprinkled in."""
    letters = "abcdefghijklmnoprstuvwyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(2000)]


def sentence(rng: random.Random, words: int, common: list[str]) -> str:
    """One word in ten Chinese, one in ten a named English word, the rest common."""

    def one() -> str:
        roll = rng.random()
        return (
            rng.choice(ZH) if roll < 0.1 else rng.choice(EN) if roll < 0.2 else rng.choice(common)
        )

    return " ".join(one() for _ in range(words))


def events(count: int, rng: random.Random, common: list[str]) -> list[Event]:
    return [
        ArticlePublished(
            article_id=new_id_str(),
            author_id=new_id_str(),
            version=2,
            title=sentence(rng, 6, common),
            content=sentence(rng, 80, common),
            tags=rng.sample(TAGS, 5),
        )
        for _ in range(count)
    ]


async def append(settings: Settings, made: list[Event]) -> None:
    log = EventLog.from_settings(settings, timeout_s=30)
    await log.start()
    try:
        for start in range(0, len(made), 2000):
            chunk = made[start : start + 2000]
            await log.append([envelop(e, actor_id=None, request_id=None) for e in chunk])
    finally:
        await log.close()


def bulk_bodies(made: list[Event], index: str, batch: int) -> list[list[dict[str, Any]]]:
    """The projector's documents for ``made``, as ``_bulk`` bodies of ``batch`` documents."""
    lines: list[dict[str, Any]] = []
    for i, event in enumerate(made):
        rec = Recorded(envelop(event, actor_id=None, request_id=None), event, "t", 0, i, 0)
        article_id = event.article_id  # type: ignore[attr-defined]
        source = fold_article(empty_article(article_id), [rec])
        lines += [{"create": {"_index": index, "_id": article_id}}, source]
    step = 2 * batch
    return [lines[i : i + step] for i in range(0, len(lines), step)]


async def send_bulks(
    client: AsyncOpenSearch, bodies: list[list[dict[str, Any]]], lanes: int
) -> None:
    queue = list(reversed(bodies))

    async def sender() -> None:
        while queue:
            body = queue.pop()
            result = await client.bulk(body=body, refresh=False, request_timeout=BULK_TIMEOUT_S)
            assert bulk_conflicts(result) == []

    await asyncio.gather(*(sender() for _ in range(lanes)))


async def bulk_alone(settings: Settings, made: list[Event], params: Params) -> float:
    client = make_opensearch(settings.opensearch_url)
    index = f"{settings.prefix}-bulk-baseline"
    try:
        await client.indices.create(index=index, body=ARTICLES_BODY)
        bodies = bulk_bodies(made, index, params.batch)
        started = time.perf_counter()
        await send_bulks(client, bodies, params.lanes)
        return rate(len(made), time.perf_counter() - started)
    finally:
        await client.indices.delete(index=index, ignore_unavailable=True)
        await client.close()


async def projector_rate(settings: Settings, count: int) -> tuple[float, float]:
    """Documents/s from the first checkpoint to the last, and the start-up seconds."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(run_projectors(settings, [ARTICLES], stop))
    first: tuple[float, int] | None = None
    try:
        while True:
            done = int(await conn.fetchval(CHECKPOINT_SUM, ARTICLES))
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done)
            if done >= count:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        await conn.close()
    assert first is not None
    return rate(count - first[1], now - first[0]), first[0] - started


async def load_the_rest(
    settings: Settings, params: Params, rng: random.Random, common: list[str]
) -> None:
    """The articles past the projected ones, straight into the projector's index."""
    client = make_opensearch(settings.opensearch_url)
    index = index_name(settings.prefix, ARTICLES, 1)
    try:
        for start in range(params.projected, params.articles, LOAD_CHUNK):
            made = events(min(LOAD_CHUNK, params.articles - start), rng, common)
            await send_bulks(client, bulk_bodies(made, index, params.batch), params.lanes)
    finally:
        await client.close()


async def searchable(settings: Settings) -> int:
    client = make_opensearch(settings.opensearch_url)
    try:
        index = index_name(settings.prefix, ARTICLES, 1)
        await client.indices.refresh(index=index)
        found = await client.count(index=index, body={"query": {"term": {"state": "published"}}})
        return int(found["count"])
    finally:
        await client.close()


async def engine_took(settings: Settings, rounds: int = 30) -> dict[str, float]:
    """The median time OpenSearch itself reports (``took``) for each query's request, the
    same body the API sends: what of the API's latency is the engine's."""
    client = make_opensearch(settings.opensearch_url)
    index = index_name(settings.prefix, ARTICLES, 1)
    out = {}
    try:
        for name, q in QUERIES.items():
            body = articles_request(q, tag=None, author=None, limit=20, after=None)
            took = [(await client.search(index=index, body=body))["took"] for _ in range(rounds)]
            out[name] = float(statistics.median(took))
    finally:
        await client.close()
    return out


def latency(settings: Settings, params: Params) -> dict[str, dict[str, float]]:
    ensure_wrk()
    out: dict[str, dict[str, float]] = {}
    log = ARTIFACTS / "search-api.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with uvicorn_server("bloghub", 1, bloghub_env(settings), log, "/healthz") as server:
        for name, q in QUERIES.items():
            target = Target(f"/v1/search/articles?{urlencode({'q': q})}")
            run_wrk(server.url, target, params.connections, params.warmup_s, 0)
            peak = run_wrk(server.url, target, params.connections, params.duration_s, 0)
            half = run_wrk(server.url, target, params.connections, params.duration_s, peak.rate / 2)
            out[name] = {
                "max_rate": peak.rate,
                "half_rate": half.rate,
                "p50_ms": half.p50_ms,
                "p99_ms": half.p99_ms,
                "errors": float(peak.errors + half.errors),
            }
    return out


async def run(params: Params = Params()) -> Report:
    async with workspace(NAME, migrate=True) as ws:
        settings = ws.settings.model_copy(
            update={"batch_max_events": params.batch, "apply_concurrency": params.lanes}
        )
        rng = random.Random(7)
        common = vocabulary(rng)
        made = events(params.projected, rng, common)
        console.print(f"appending {len(made)} published articles")
        await append(settings, made)
        bulk = await bulk_alone(settings, made, params)
        projected, startup = await projector_rate(settings, len(made))
        del made
        console.print(f"loading {params.articles - params.projected} more with _bulk")
        await load_the_rest(settings, params, rng, common)
        found = await searchable(settings)
        took = await engine_took(settings)
        timings = await asyncio.to_thread(latency, settings, params)
        client = make_opensearch(settings.opensearch_url)
        await client.indices.delete(index=f"{settings.prefix}-*", ignore_unavailable=True)
        await client.close()
    report = Report(NAME, "Search projector vs _bulk alone; search latency", asdict(params))
    report.figures += [
        Figure("_bulk alone", bulk, "docs/s"),
        Figure("search projector", projected, "docs/s", detail=f"start-up {startup:.1f} s"),
        Figure("projector / bulk", projected / bulk, "x", goal=GOAL_RATIO),
    ]
    for name, t in timings.items():
        report.figures += [
            Figure(f"search {name}: max rate", t["max_rate"], "req/s"),
            Figure(
                f"search {name}: p50 at half",
                t["p50_ms"],
                "ms",
                detail=f"{t['half_rate']:.0f} req/s",
            ),
            Figure(f"search {name}: p99 at half", t["p99_ms"], "ms"),
            Figure(f"search {name}: OpenSearch took", took[name], "ms", detail="median, alone"),
        ]
    report.checks += [
        Check(
            "every article searchable",
            found == params.articles,
            f"{found} of {params.articles}",
        ),
        Check(
            "no search failed",
            all(t["errors"] == 0 for t in timings.values()),
            ", ".join(f"{k}: {int(t['errors'])}" for k, t in timings.items()),
        ),
    ]
    report.raw = {"latency": timings}
    return report


def scaled(articles: int) -> Params:
    """The default parameters over ``articles`` articles; the projector half keeps its
    20,000 unless there are fewer."""
    return Params(articles=articles, projected=min(PROJECTED, articles))
