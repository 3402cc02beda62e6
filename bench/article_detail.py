"""Published article detail (``GET /v1/articles/{id}``), cached against uncached, in one run.

One fresh prefix and database, the projectors running in-process, and two instances of the
real app under uvicorn on loopback ports, sharing everything but one setting: the first has
``cache_enabled=True`` (the published view and the author's profile come from Redis), the
second ``cache_enabled=False`` (every read goes to the read models in PostgreSQL). One author
publishes ~50 articles of ~5 KB Markdown over HTTP, and both instances must answer every one
before the load starts.

The load is closed-loop: ``concurrency`` anonymous readers on one keep-alive
``httpx.AsyncClient`` each send the next request as soon as the previous one is answered,
taking the article ids round-robin. The generator runs in a worker process of its own, so it
does not share the servers' event loop (nor their interpreter lock). After a warm-up of each
side, cached and uncached windows of a fixed duration alternate (ABBA order) for a few rounds;
every latency is kept, and the figures are the medians over the rounds.

Correctness: every answer must be 200, and for each id every answer, cached or not, must carry
exactly the same body bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import multiprocessing
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from tests.loopback import serve_asgi

from bench.support import (
    Check,
    Figure,
    Report,
    console,
    median,
    quiet_logs,
    rate,
    workspace,
)
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.cache import Cache
from bloghub.api.app import create_app
from bloghub.projections.worker import run_projectors
from bloghub.readmodels import published_key
from bloghub.settings import Settings

NAME = "article_detail"
CACHED, UNCACHED = "cached", "uncached"
SIDES = (CACHED, UNCACHED)
CLIENT_BOUND = 0.85  # load generator busier than this: the figure may be the client's limit
PASSWORD = "bench-Pass-1234!"
TAGS = ("python", "kafka", "postgres", "redis", "asyncio", "events", "testing", "design")
VOCABULARY = (
    "event log projector cache reader writer offset partition commit batch latency "
    "throughput replica snapshot aggregate command query index schema version topic "
    "consumer producer window tail median percentile queue backlog idempotent retry"
)
WORDS = tuple(VOCABULARY.split())


@dataclass(frozen=True, slots=True)
class Params:
    articles: int = 50
    content_bytes: int = 5_000
    concurrency: int = 32
    warmup_s: float = 3.0
    duration_s: float = 8.0
    rounds: int = 3
    ready_timeout_s: float = 60.0


# --- the servers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """The real app on a loopback port, served by uvicorn in this event loop; yields its URL."""
    async with serve_asgi(create_app(settings), lifespan="on") as url:
        yield url


@contextlib.asynccontextmanager
async def projectors(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """Every projector, in-process, until the block ends (a crash is raised at the end)."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_projectors(settings, [], stop), name="bench:projectors")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


# --- the articles ----------------------------------------------------------------------------


def markdown(i: int, size: int) -> str:
    """A deterministic Markdown article of about ``size`` bytes: headings, paragraphs with
    emphasis and links, a list and a code block."""
    rnd = random.Random(i)
    parts = [f"# Notes on {rnd.choice(WORDS)} {rnd.choice(WORDS)}, part {i}\n"]
    section = 0
    while sum(len(p) + 1 for p in parts) < size:
        section += 1
        parts.append(f"## {section}. The {rnd.choice(WORDS)} and the {rnd.choice(WORDS)}\n")
        for _ in range(2):
            words = [rnd.choice(WORDS) for _ in range(60)]
            words[3] = f"*{words[3]}*"
            words[11] = f"**{words[11]}**"
            words[20] = f"[{words[20]}](https://example.com/{words[20]})"
            parts.append(" ".join(words).capitalize() + ".\n")
        parts.append("\n".join(f"- {rnd.choice(WORDS)} {rnd.choice(WORDS)}" for _ in range(4)))
        parts.append(f"```python\nresult = {rnd.choice(WORDS)}({rnd.randint(1, 999)})\n```\n")
    return "\n".join(parts)[:size]


async def publish_articles(
    client: httpx.AsyncClient, params: Params, *, login_timeout_s: float = 30.0
) -> list[str]:
    """Sign up and log in one author, create and publish ``params.articles`` articles; their
    ids in creation order."""
    email = f"bench-{secrets.token_hex(6)}@example.com"
    body = {"email": email, "password": PASSWORD, "confirm_password": PASSWORD}
    signed = await client.post("/v1/users", json=body)
    if signed.status_code != 201:
        raise RuntimeError(f"signup answered {signed.status_code}: {signed.text}")
    deadline = time.monotonic() + login_timeout_s
    while True:
        login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        if login.status_code == 200:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"login answered {login.status_code}: {login.text}")
        await asyncio.sleep(0.2)
    auth = {"authorization": f"Bearer {login.json()['access_token']}"}

    ids: list[str] = []
    for i in range(params.articles):
        rnd = random.Random(i)
        article = {
            "title": f"Article {i}: the {rnd.choice(WORDS)} of {rnd.choice(WORDS)}",
            "content": markdown(i, params.content_bytes),
            "tags": rnd.sample(TAGS, 3),
        }
        created = await client.post("/v1/articles", json=article, headers=auth)
        if created.status_code != 201:
            raise RuntimeError(f"create answered {created.status_code}: {created.text}")
        ids.append(created.json()["article"]["id"])

    gate = asyncio.Semaphore(8)

    async def publish(article_id: str) -> None:
        async with gate:
            done = await client.post(f"/v1/articles/{article_id}/publish", headers=auth)
        if done.status_code != 200:
            raise RuntimeError(f"publish answered {done.status_code}: {done.text}")

    await asyncio.gather(*(publish(a) for a in ids))
    return ids


async def wait_readable(
    client: httpx.AsyncClient,
    urls: Sequence[str],
    ids: Sequence[str],
    watched: asyncio.Task[None],
    timeout_s: float,
) -> float:
    """Until every instance answers 200 for every id (anonymously); seconds waited."""
    started = time.monotonic()
    pending = [f"{url}/v1/articles/{a}" for url in urls for a in ids]
    while pending:
        answers = [await client.get(target) for target in pending]
        pending = [t for t, a in zip(pending, answers, strict=True) if a.status_code != 200]
        if not pending:
            break
        if watched.done():
            watched.result()
            raise RuntimeError("the projectors stopped")
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{len(pending)} reads still not 200 after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def views_in_redis(settings: Settings, ids: Sequence[str]) -> int:
    """How many of ``ids`` have their published view in the cache (the cached side's source)."""
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        cache = Cache(redis, prefix=settings.prefix)
        return int(await redis.exists(*(published_key(cache, a) for a in ids)))
    finally:
        await redis.aclose()


async def forget_redis_keys(settings: Settings) -> int:
    """Every Redis key of this run's prefix (caches, rate windows, heartbeats) is deleted."""
    redis = make_redis(settings.redis_url.get_secret_value())
    deleted = 0
    try:
        keys = [k async for k in redis.scan_iter(match=f"{settings.prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            deleted += int(await redis.delete(*keys[start : start + 500]))
    finally:
        await redis.aclose()
    return deleted


# --- the load generator (runs in a worker process) -------------------------------------------


@dataclass(slots=True)
class Window:
    """One closed-loop run against one instance."""

    side: str
    round: int  # 0 is the warm-up
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    first_error: str = ""
    bodies: dict[str, bytes] = field(default_factory=dict)  # the first body seen per id
    differing: int = 0  # answers whose body was not the first one seen for their id
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0  # filled in by the parent: its own CPU time during the window

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rate(self) -> float:
        return rate(self.requests, self.elapsed_s)

    def percentile_ms(self, q: float) -> float:
        return percentile(sorted(self.latencies_s), q) * 1000.0


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (``q`` in 0..1)."""
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def load_window(
    url: str, ids: Sequence[str], concurrency: int, duration_s: float, side: str, round_: int
) -> Window:
    """Entry point in the worker process."""
    return asyncio.run(_load(url, ids, concurrency, duration_s, Window(side, round_)))


async def _load(
    url: str, ids: Sequence[str], concurrency: int, duration_s: float, out: Window
) -> Window:
    paths = [f"/v1/articles/{a}" for a in ids]
    turn = itertools.count()
    statuses: Counter[int] = Counter()

    def note(index: int, response: httpx.Response) -> None:
        statuses[response.status_code] += 1
        body = response.content
        if out.bodies.setdefault(ids[index], body) != body:
            out.differing += 1

    # One client with one keep-alive connection per reader (``concurrency`` connections in
    # all): a single httpx pool shared by 32 readers spends milliseconds of CPU per request
    # (encode/httpx#3215) and would measure itself instead of the server.
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=url,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                    timeout=10.0,
                    headers={"user-agent": "bloghub-bench/1"},
                )
            )
            for _ in range(concurrency)
        ]
        # Open every connection before the clock starts (these answers are checked too).
        primed = [next(turn) % len(paths) for _ in clients]
        answers = await asyncio.gather(
            *(c.get(paths[i]) for c, i in zip(clients, primed, strict=True))
        )
        for index, answer in zip(primed, answers, strict=True):
            note(index, answer)

        cpu_before = time.process_time()
        started = time.perf_counter()
        deadline = started + duration_s

        async def reader(client: httpx.AsyncClient) -> None:
            while (sent := time.perf_counter()) < deadline:
                index = next(turn) % len(paths)
                try:
                    answer = await client.get(paths[index])
                except httpx.HTTPError as exc:
                    out.errors += 1
                    out.first_error = out.first_error or repr(exc)
                    continue
                out.latencies_s.append(time.perf_counter() - sent)
                note(index, answer)

        await asyncio.gather(*(reader(c) for c in clients))
        out.elapsed_s = time.perf_counter() - started
        out.client_cpu_s = time.process_time() - cpu_before
    out.statuses = dict(statuses)
    return out


async def run_window(
    pool: ProcessPoolExecutor,
    url: str,
    ids: Sequence[str],
    params: Params,
    side: str,
    round_: int,
) -> Window:
    loop = asyncio.get_running_loop()
    cpu_before = time.process_time()
    duration = params.warmup_s if round_ == 0 else params.duration_s
    window = await loop.run_in_executor(
        pool, load_window, url, list(ids), params.concurrency, duration, side, round_
    )
    window.server_cpu_s = time.process_time() - cpu_before
    return window


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ratio(Figure):
    """cached / uncached; judged "cached faster" or "not faster" (no goal is set)."""

    lower_is_better: bool = False

    @property
    def judgement(self) -> str:
        faster = self.value < 1.0 if self.lower_is_better else self.value > 1.0
        return "cached faster" if faster else "not faster"

    def as_json(self) -> dict[str, Any]:
        return Figure.as_json(self) | {
            "verdict": self.judgement,
            "lower_is_better": self.lower_is_better,
        }


class DetailReport(Report):
    """The shared report, with the ratios' judgement in the verdict column."""

    def verdict_cell(self, fig: Figure) -> str:
        if isinstance(fig, Ratio):
            colour = "green" if fig.judgement == "cached faster" else "yellow"
            return f"[{colour}]{fig.judgement}[/]"
        return super().verdict_cell(fig)


def _rounds(values: Sequence[float], fmt: str) -> str:
    return ", ".join(format(v, fmt) for v in values)


def side_figures(side: str, windows: Sequence[Window]) -> list[Figure]:
    rates = [w.rate for w in windows]
    p50 = [w.percentile_ms(0.50) for w in windows]
    p99 = [w.percentile_ms(0.99) for w in windows]
    requests = sum(w.requests for w in windows)
    return [
        Figure(
            f"{side}: req/s",
            median(rates),
            "/s",
            detail=f"rounds {_rounds(rates, ',.0f')}; {requests:,} requests",
        ),
        Figure(f"{side}: p50", median(p50), "ms", detail="rounds " + _rounds(p50, ".2f")),
        Figure(f"{side}: p99", median(p99), "ms", detail="rounds " + _rounds(p99, ".2f")),
    ]


def ratio_figures(measured: dict[str, list[Window]]) -> list[Figure]:
    cached, uncached = measured[CACHED], measured[UNCACHED]
    rate_rounds = [c.rate / u.rate for c, u in zip(cached, uncached, strict=True)]
    p99_rounds = [
        c.percentile_ms(0.99) / u.percentile_ms(0.99) for c, u in zip(cached, uncached, strict=True)
    ]
    rate_ratio = median([w.rate for w in cached]) / median([w.rate for w in uncached])
    p99_ratio = median([w.percentile_ms(0.99) for w in cached]) / median(
        [w.percentile_ms(0.99) for w in uncached]
    )
    return [
        Ratio(
            "req/s cached / uncached",
            rate_ratio,
            "x",
            detail=f"of the medians (higher is better); per round {_rounds(rate_rounds, '.2f')}",
        ),
        Ratio(
            "p99 cached / uncached",
            p99_ratio,
            "x",
            lower_is_better=True,
            detail=f"of the medians (lower is better); per round {_rounds(p99_rounds, '.2f')}",
        ),
    ]


def correctness(windows: Sequence[Window], ids: Sequence[str], in_redis: int) -> list[Check]:
    statuses: Counter[int] = Counter()
    for w in windows:
        statuses.update(w.statuses)
    answered = sum(statuses.values())
    errors = sum(w.errors for w in windows)
    not_ok = answered - statuses[200]
    first_error = next((w.first_error for w in windows if w.first_error), "")
    status_detail = f"{answered:,} answers, {not_ok:,} not 200, {errors:,} transport errors"
    if not_ok:
        status_detail += f"; statuses {dict(sorted(statuses.items()))}"
    if first_error:
        status_detail += f"; first error {first_error}"

    differing = sum(w.differing for w in windows)
    reference = {side: next(w for w in windows if w.side == side).bodies for side in SIDES}
    missing = sum(1 for w in windows for a in ids if a not in w.bodies)
    drifted = sum(
        1 for w in windows for a, body in w.bodies.items() if reference[w.side].get(a) != body
    )
    unequal = [a for a in ids if reference[CACHED].get(a) != reference[UNCACHED].get(a)]
    sizes = [len(reference[CACHED].get(a, b"")) for a in ids]
    return [
        Check("every answer is 200", not_ok == 0 and errors == 0, status_detail),
        Check(
            "one body per id on each side",
            differing == 0 and drifted == 0 and missing == 0,
            f"{differing:,} answers differed within a window, {drifted:,} across windows; "
            f"{missing:,} ids never read in a window",
        ),
        Check(
            "cached body == uncached body, every id",
            not unequal,
            f"{len(ids) - len(unequal)} of {len(ids)} ids byte-identical "
            f"(bodies {min(sizes):,}-{max(sizes):,} bytes)",
        ),
        Check(
            "published views in Redis",
            in_redis == len(ids),
            f"{in_redis} of {len(ids)} ids (what the cached side reads)",
        ),
    ]


# --- the run ---------------------------------------------------------------------------------


async def run(params: Params = Params()) -> Report:
    report = DetailReport(
        name=NAME,
        title="article_detail: published detail, cached vs uncached, same run (req/s and p99)",
        params=asdict(params),
    )
    windows: list[Window] = []
    async with workspace(NAME, migrate=True) as ws:
        base = ws.settings.model_copy(
            update={
                # Thousands of requests a second from one address: the limiter still runs
                # (same work on both sides) but never refuses.
                "rate_ip_per_minute": 1_000_000_000,
                "rate_user_per_minute": 1_000_000_000,
            }
        )
        urls: dict[str, str] = {}
        console.print(f"[dim]{NAME}: prefix {ws.prefix}, database {ws.database}[/]")
        try:
            async with contextlib.AsyncExitStack() as stack:
                running = await stack.enter_async_context(projectors(base))
                for side in SIDES:
                    settings = base.model_copy(update={"cache_enabled": side == CACHED})
                    urls[side] = await stack.enter_async_context(serve(settings))
                # Each app configures info logs (a line per request) as it starts.
                quiet_logs()
                async with httpx.AsyncClient(base_url=urls[CACHED], timeout=15.0) as client:
                    seeding = time.perf_counter()
                    ids = await publish_articles(client, params)
                    seed_s = time.perf_counter() - seeding
                    ready_s = await wait_readable(
                        client, list(urls.values()), ids, running, params.ready_timeout_s
                    )
                console.print(
                    f"[dim]{len(ids)} articles published in {seed_s:.1f}s, readable on both "
                    f"instances {ready_s:.1f}s later[/]"
                )
                pool = stack.enter_context(
                    ProcessPoolExecutor(
                        max_workers=1, mp_context=multiprocessing.get_context("spawn")
                    )
                )
                for side in SIDES:
                    windows.append(await run_window(pool, urls[side], ids, params, side, 0))
                for round_ in range(1, params.rounds + 1):
                    order = SIDES if round_ % 2 else tuple(reversed(SIDES))
                    for side in order:
                        window = await run_window(pool, urls[side], ids, params, side, round_)
                        windows.append(window)
                        console.print(
                            f"[dim]round {round_} {side:>8}: {window.rate:8,.0f} req/s  "
                            f"p50 {window.percentile_ms(0.5):6.2f} ms  "
                            f"p99 {window.percentile_ms(0.99):6.2f} ms[/]"
                        )
                in_redis = await views_in_redis(base, ids)
        finally:
            await forget_redis_keys(base)

    measured = {side: [w for w in windows if w.side == side and w.round > 0] for side in SIDES}
    report.figures += side_figures(CACHED, measured[CACHED])
    report.figures += side_figures(UNCACHED, measured[UNCACHED])
    report.figures += ratio_figures(measured)
    report.checks += correctness(windows, ids, in_redis)
    report.raw = {
        "seed_s": seed_s,
        "ready_s": ready_s,
        "windows": [
            {
                "side": w.side,
                "round": w.round,
                "requests": w.requests,
                "elapsed_s": w.elapsed_s,
                "rate": w.rate,
                "p50_ms": w.percentile_ms(0.50),
                "p90_ms": w.percentile_ms(0.90),
                "p99_ms": w.percentile_ms(0.99),
                "max_ms": w.percentile_ms(1.0),
                "statuses": {str(k): v for k, v in w.statuses.items()},
                "errors": w.errors,
                "client_cpu_s": w.client_cpu_s,
                "server_cpu_s": w.server_cpu_s,
            }
            for w in windows
        ],
    }
    for side in SIDES:
        load = median([w.client_cpu_s / w.elapsed_s for w in measured[side]])
        served = median([w.server_cpu_s / w.elapsed_s for w in measured[side]])
        report.notes.append(
            f"{side}: CPU busy (median of the rounds, one core = 100%, {_cores()} cores here): "
            f"servers' process {served:.0%}, load generator {load:.0%}"
        )
        if load >= CLIENT_BOUND:
            report.notes.append(
                f"{side}: the load generator used {load:.0%} of a core, so it may be what "
                f"limits this side: its req/s is a floor, not the server's ceiling"
            )
    report.notes.append(
        f"the load generator is a separate process ({params.concurrency} clients of one "
        "keep-alive connection each); both instances and the projectors share one event loop "
        "in this process, but only one instance is loaded at a time; PostgreSQL and Redis run "
        "on the same machine"
    )
    return report


def _cores() -> int:
    return multiprocessing.cpu_count()
