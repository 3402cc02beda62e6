"""The interactions projector: likes per second against the store's ceiling for the same
writes, and freshness (a like accepted by the log until another reader sees the count).

* seed: ``params.articles`` publishes, then ``params.likes`` likes and unlikes (85/15) of
  random (article, user) pairs, encoded with the real codec, keyed by article;
* projector: ``bloghub project interactions`` (the real runner and ``InteractionsProjector``:
  lanes, checkpoints, the Redis counter hashes after each commit; ``bloghub run`` runs the
  other projectors in the same processes too) in each count of ``params.processes`` and
  in as many as ``bloghub run`` starts by default (one per core up to two: the goals apply
  to that count), sharing the partitions through their consumer group, each told how many
  share them (``--projectors N``); its rate is
  taken from the checkpoints (polled every 20 ms) from the moment the group is Stable with
  every process and a tenth of the log is applied until all of it is, which leaves out the
  processes' start and the group's forming;
* store ceiling: the same set and counter writes straight from asyncpg (batches of the
  runner's size folded beforehand, one transaction each, on as many connections as the
  projector processes have lanes in all, articles split between them as partitions are):
  no Kafka, no decoding;
* each projector run follows a ceiling run on as many connections, ``params.rounds`` times
  (the read model and the counter hashes emptied before each), and each ratio is the median
  of the rounds' ratios: this machine's speed drifts over a minute by more than the gap
  being measured, so a projector run and a ceiling run far apart in time compare the
  machine with itself as much as the code;
* freshness: likes appended one by one at ``params.rate``/s (what the API does before it
  answers) while the projector runs as ``bloghub run`` runs it by default; a reader polls
  the counter hashes (what article detail reads) and notes when each article's count
  reaches each like. p50/p99 of the gap.

After every projector round every article's ``like_cnt`` must equal its like rows, or the
run FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from tests.support import group_settled

import bloghub.events.catalog  # noqa: F401  (registers every event type)
from bench.http import bloghub_env, spawned
from bench.support import (
    ARTIFACTS,
    Check,
    Figure,
    Report,
    console,
    histogram,
    rate,
    workspace,
)
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.counters import CounterCache
from bloghub.cli import DEFAULT_PROJECTOR_PROCESSES
from bloghub.events.articles import ArticlePublished
from bloghub.events.base import Event, envelop
from bloghub.events.codec import encode
from bloghub.events.interactions import ArticleLiked, ArticleUnliked
from bloghub.events.log import EventLog
from bloghub.events.topics import topic_for
from bloghub.ids import new_id_str
from bloghub.projections.runner_config import group_id
from bloghub.settings import Settings

NAME = "counters"
GOAL_RATIO = 0.5
GOAL_RATE = 30_000.0
GOAL_P99_MS = 200.0
CHECKPOINTS = (
    "SELECT coalesce(sum(next_offset), 0) FROM public.projector_checkpoints "
    "WHERE projector = 'interactions' AND generation = 1"
)


@dataclass(frozen=True, slots=True)
class Params:
    likes: int = 600_000
    articles: int = 200
    users: int = 20_000
    rate: float = 500.0
    rounds: int = 3
    fresh_s: float = 10.0
    deadline_s: float = 180.0
    processes: tuple[int, ...] = (1, 2)  # projector processes measured (one after the other)


Like = tuple[str, str, bool]  # article, user, like (False: unlike)


def likes(params: Params, author: str, articles: list[str]) -> list[Like]:
    rng = random.Random(7)
    users = [new_id_str() for _ in range(params.users)]
    return [
        (rng.choice(articles), rng.choice(users), rng.random() < 0.85) for _ in range(params.likes)
    ]


def as_event(author: str, like: Like) -> Event:
    article, user, on = like
    kind = ArticleLiked if on else ArticleUnliked
    return kind(article_id=article, author_id=author, user_id=user)


async def seed(settings: Settings, events: list[Event]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        for start in range(0, len(events), 5000):
            futures = []
            for event in events[start : start + 5000]:
                env = envelop(event, actor_id=None, request_id=None)
                value, headers = encode(env)
                topic = topic_for(settings.prefix, event.FAMILY)
                key = env.aggregate_id.encode()
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


def projecting(settings: Settings, processes: int, logs: Path) -> contextlib.ExitStack:
    """``processes`` processes of ``bloghub project interactions``, each told how many share
    the partitions (as ``bloghub run --projectors`` tells them), stopped (drained) on exit."""
    stack = contextlib.ExitStack()
    argv = [sys.executable, "-m", "bloghub.cli", "project", "interactions"]
    env = bloghub_env(settings) | {"BLOGHUB_PROJECTOR_PROCESSES": str(processes)}
    for k in range(processes):
        stack.enter_context(spawned(argv, env, logs / f"projector-{k}.log"))
    return stack


async def project_once(settings: Settings, processes: int, total: int, deadline_s: float) -> float:
    """Events/s of ``processes`` projector processes over the whole log: from the moment
    their group is Stable with all of them and a tenth of the log is applied (their start
    and the group's forming left out) until all of it is."""
    logs = ARTIFACTS / "counters-logs"
    logs.mkdir(parents=True, exist_ok=True)
    group = group_id(settings.prefix, "interactions", 1)
    watcher = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        with projecting(settings, processes, logs):
            started = time.perf_counter()
            first: tuple[float, int] | None = None
            formed = False
            while True:
                done = int(await watcher.fetchval(CHECKPOINTS))
                now = time.perf_counter()
                if done >= total:
                    break
                if first is None and done >= total // 10:
                    formed = formed or await group_settled(settings, group, processes)
                    if formed:
                        first = (time.perf_counter(), done)
                if now - started > deadline_s:
                    raise RuntimeError("the projector did not finish in time")
                await asyncio.sleep(0.02)
    finally:
        await watcher.close()
    if first is None or total - first[1] < total // 4:
        raise RuntimeError("the group formed too late to time a quarter of the log")
    return rate(total - first[1], now - first[0])


# --- the store's ceiling --------------------------------------------------------------------

_ADD = (
    "INSERT INTO interactions_g1.likes (article_id, user_id, liked_at) "
    "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) "
    "ON CONFLICT DO NOTHING RETURNING article_id"
)
_REMOVE = (
    "DELETE FROM interactions_g1.likes l USING unnest($1::uuid[], $2::uuid[]) AS x(a, u) "
    "WHERE l.article_id = x.a AND l.user_id = x.u RETURNING l.article_id"
)
_COUNT = (
    "UPDATE interactions_g1.article_stats s SET like_cnt = s.like_cnt + x.d "
    "FROM unnest($1::uuid[], $2::bigint[]) AS x(a, d) WHERE s.article_id = x.a"
)


def folded(batch: list[Like]) -> tuple[list[Like], list[Like]]:
    last: dict[tuple[str, str], bool] = {}
    for article, user, on in batch:
        last[(article, user)] = on
    adds = sorted((a, u, True) for (a, u), on in last.items() if on)
    removes = sorted((a, u, False) for (a, u), on in last.items() if not on)
    return adds, removes


async def ceiling(
    settings: Settings, author: str, all_likes: list[Like], processes: int = 1
) -> float:
    """Seconds the same writes take from asyncpg on as many connections as ``processes``
    projector processes have lanes (events/s is computed by the caller)."""
    lanes, size = settings.apply_concurrency * processes, settings.batch_max_events
    per_lane: dict[int, list[Like]] = defaultdict(list)
    for like in all_likes:
        per_lane[hash(like[0]) % lanes].append(like)
    work = {
        lane: [folded(mine[i : i + size]) for i in range(0, len(mine), size)]
        for lane, mine in per_lane.items()
    }
    conns = [await asyncpg.connect(settings.asyncpg_dsn) for _ in range(lanes)]
    # Every article's counter row there and at zero, as the projector's publishes leave them
    # (the rounds alternate, so the read model may be empty or a projector's result).
    await conns[0].execute(
        "TRUNCATE interactions_g1.likes; UPDATE interactions_g1.article_stats SET like_cnt = 0"
    )
    await conns[0].execute(
        "INSERT INTO interactions_g1.article_stats (article_id, author_id, published_at, visible) "
        "SELECT a, $2::uuid, now(), true FROM unnest($1::uuid[]) AS a ON CONFLICT DO NOTHING",
        sorted({a for a, _, _ in all_likes}),
        author,
    )
    at = datetime.now(UTC)

    async def lane(conn: asyncpg.Connection, batches: list[tuple[list[Like], list[Like]]]) -> None:
        for adds, removes in batches:
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit TO OFF")
                deltas: dict[str, int] = defaultdict(int)
                rows = await conn.fetch(
                    _ADD, [a for a, _, _ in adds], [u for _, u, _ in adds], [at] * len(adds)
                )
                for r in rows:
                    deltas[str(r[0])] += 1
                rows = await conn.fetch(
                    _REMOVE, [a for a, _, _ in removes], [u for _, u, _ in removes]
                )
                for r in rows:
                    deltas[str(r[0])] -= 1
                items = sorted(deltas.items())
                await conn.execute(_COUNT, [a for a, _ in items], [d for _, d in items])

    try:
        started = time.perf_counter()
        await asyncio.gather(*(lane(conns[i], b) for i, b in work.items()))
        return time.perf_counter() - started
    finally:
        for c in conns:
            await c.close()


# --- freshness ---------------------------------------------------------------------------------


async def freshness(
    settings: Settings, params: Params, author: str, articles: list[str], redis: Redis
) -> list[float]:
    """Milliseconds from each like's accepted append to the count reaching it."""
    log = EventLog.from_settings(settings)
    await log.start()
    counters = CounterCache(redis, prefix=settings.prefix)
    await _warm_up(log, counters, author, articles[0])
    base = {a: (t.counts.like_cnt if (t := await counters.get(a)) else 0) for a in articles}
    accepted: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, list[float]] = defaultdict(list)
    done = asyncio.Event()

    async def one(article: str) -> None:
        event = ArticleLiked(article_id=article, author_id=author, user_id=new_id_str())
        await log.append([envelop(event, actor_id=None, request_id=None)])
        accepted[article].append(time.perf_counter())

    async def watch() -> None:
        while not done.is_set() or sum(map(len, seen.values())) < sum(map(len, accepted.values())):
            pipe = redis.pipeline(transaction=False)
            for a in articles:
                pipe.hget(counters.key(a), "like_cnt")
            values = await pipe.execute()
            now = time.perf_counter()
            for a, v in zip(articles, values, strict=True):
                reached = int(v or 0) - base[a]
                while len(seen[a]) < reached:
                    seen[a].append(now)
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    tasks = []
    rng = random.Random(11)
    started = time.perf_counter()
    n = int(params.rate * params.fresh_s)
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i / params.rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(rng.choice(articles))))
    await asyncio.gather(*tasks)
    done.set()
    await asyncio.wait_for(watcher, timeout=30)
    await log.close()
    gaps = []
    for a, times in accepted.items():
        for k, at in enumerate(sorted(times)):
            gaps.append(max(0.0, seen[a][k] - at) * 1000)
    return sorted(gaps)


async def _warm_up(log: EventLog, counters: CounterCache, author: str, article: str) -> None:
    """One like, waited for: the projector process has started, joined its group and
    applies, so its start-up is not charged to the figures."""
    before = await counters.get(article)
    event = ArticleLiked(article_id=article, author_id=author, user_id=new_id_str())
    await log.append([envelop(event, actor_id=None, request_id=None)])
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        now = await counters.get(article)
        if now is not None and (before is None or now.counts.like_cnt > before.counts.like_cnt):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the projector process did not apply a like in time")


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


async def reset(settings: Settings, redis: Redis, articles: list[str]) -> None:
    """An empty read model, no checkpoint and no counter hash: the next projector run starts
    from the log's first record and writes every hash afresh (a hash refuses a version it
    already holds, which would spare a rerun its Redis writes)."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute(
            "TRUNCATE interactions_g1.likes, interactions_g1.article_stats, "
            "interactions_g1.article_versions, interactions_g1.read_marks, "
            "interactions_g1.collection_items, interactions_g1.collections; "
            "DELETE FROM public.projector_checkpoints WHERE projector = 'interactions'"
        )
    finally:
        await conn.close()
    await CounterCache(redis, prefix=settings.prefix).forget(articles)


async def miscounted(settings: Settings) -> int:
    """Articles whose ``like_cnt`` differs from their like rows."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM interactions_g1.article_stats s WHERE like_cnt <> "
                "(SELECT count(*) FROM interactions_g1.likes l "
                "WHERE l.article_id = s.article_id)"
            )
        )
    finally:
        await conn.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


async def run(params: Params = Params()) -> Report:
    report = Report(
        name=NAME,
        title="counters: interactions projector / store ceiling, and like freshness",
        params=asdict(params),
    )
    async with workspace(NAME, migrate=True) as ws:
        settings = ws.settings
        author = new_id_str()
        articles = [new_id_str() for _ in range(params.articles)]
        published: list[Event] = [
            ArticlePublished(
                article_id=a, author_id=author, version=1, title="t", content="", tags=[]
            )
            for a in articles
        ]
        all_likes = likes(params, author, articles)
        await seed(settings, [*published, *(as_event(author, x) for x in all_likes)])
        total = len(published) + len(all_likes)
        redis = make_redis(settings.redis_url.get_secret_value())
        counts = sorted({DEFAULT_PROJECTOR_PROCESSES, *params.processes})
        projected: dict[int, list[float]] = {n: [] for n in counts}
        stores: dict[int, list[float]] = {n: [] for n in counts}
        wrong: list[int] = []
        # Ceiling first, projector last: the freshness run goes on from the projector's
        # checkpoints and hashes.
        for k in range(params.rounds):
            for n in counts:
                took = await ceiling(settings, author, all_likes, n)
                stores[n].append(rate(len(all_likes), took))
                await reset(settings, redis, articles)
                projected[n].append(await project_once(settings, n, total, params.deadline_s))
                wrong.append(await miscounted(settings))
                console.print(
                    f"[dim]round {k + 1}, {n} process(es): store ceiling {stores[n][-1]:,.0f} "
                    f"events/s, projector {projected[n][-1]:,.0f} events/s "
                    f"({projected[n][-1] / stores[n][-1]:.2f}x)[/]"
                )
        # Freshness with the projector as `bloghub run` runs it, in processes of its own:
        # the load and the watching reader must not share its event loop.
        with projecting(settings, DEFAULT_PROJECTOR_PROCESSES, ARTIFACTS / "counters-logs"):
            gaps = await freshness(settings, params, author, articles, redis)
        histogram(
            f"freshness at {params.rate:.0f} likes/s: accepted → count seen by another reader",
            gaps,
            (25, 50, 75, 100, 150, 200, 500),
            "ms",
        )
        await redis.aclose()
    for n in counts:
        # The goals are for the projector as `bloghub run` runs it on this machine.
        deployed = n == DEFAULT_PROJECTOR_PROCESSES
        ratios = [p / c for p, c in zip(projected[n], stores[n], strict=True)]
        report.figures += [
            Figure(
                f"projector, {n} process(es) (median of the rounds)",
                median(projected[n]),
                "events/s",
                goal=GOAL_RATE if deployed else None,
                detail="likes and unlikes",
            ),
            Figure(
                f"store ceiling on {n * settings.apply_concurrency} connections",
                median(stores[n]),
                "events/s",
            ),
            Figure(
                f"ratio projector / store ceiling, {n} process(es) (median of the rounds)",
                median(ratios),
                "x",
                goal=GOAL_RATIO if deployed else None,
                detail=" ".join(f"{r:.2f}" for r in ratios),
            ),
        ]
    report.figures += [
        Figure(f"freshness p50 at {params.rate:.0f} likes/s", pct(gaps, 0.5), "ms"),
        Figure(
            f"freshness p99 at {params.rate:.0f} likes/s",
            pct(gaps, 0.99),
            "ms",
            detail=f"goal < {GOAL_P99_MS:.0f} ms",
        ),
    ]
    report.checks.append(
        Check(
            "counts equal their like rows after every projector round",
            not any(wrong),
            f"articles that differ, by round: {wrong}",
        )
    )
    report.notes += [
        f"lanes {settings.apply_concurrency}, batch {settings.batch_max_events}; "
        "freshness polls the counter hashes every 2 ms (what article detail reads)",
        "the ceiling splits articles between its connections as the runner's lanes split "
        "partitions, so its writers do not wait on each other's rows either",
        f"{params.rounds} rounds, each a ceiling run then a projector run over the whole log "
        "from an empty read model, for each count of processes; ceiling / projector events/s: "
        + "; ".join(
            f"{n}: "
            + ", ".join(
                f"{c:,.0f} / {p:,.0f}" for c, p in zip(stores[n], projected[n], strict=True)
            )
            for n in counts
        ),
        f"the goals apply to {DEFAULT_PROJECTOR_PROCESSES} process(es), what `bloghub run` "
        "starts by default (--projectors); the projector's rate runs from a tenth of the log "
        "applied to all of it",
    ]
    return report
