"""Helpers for tests that drive the log and projector processes directly."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from hypothesis import HealthCheck, settings

from bloghub.adapters.postgres.databases import drop_database
from bloghub.adapters.postgres.generations import create_generation
from bloghub.adapters.redis import make_redis
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleDrafted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
    DraftEdited,
)
from bloghub.events.base import Event, Recorded, envelop, registry
from bloghub.events.log import EventLog
from bloghub.events.position import Position
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.postgres_sink import PostgresProjector, projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.settings import Settings


async def append_registrations(log: EventLog, count: int, *, tag: str, chunk: int = 1000) -> None:
    for start in range(0, count, chunk):
        envs = [
            envelop(
                UserRegistered(
                    user_id=new_id_str(),
                    email=f"{tag}-{i}@example.com",
                    password_hash="$argon2id$synthetic",
                ),
                actor_id=None,
                request_id=None,
            )
            for i in range(start, min(count, start + chunk))
        ]
        await log.append(envs)


async def append_events(log: EventLog, events: Sequence[Event], *, chunk: int = 1000) -> None:
    for start in range(0, len(events), chunk):
        await log.append(
            [envelop(e, actor_id=None, request_id=None) for e in events[start : start + chunk]]
        )


@dataclass
class _Article:
    version: int
    draft_tags: list[str]
    published_tags: list[str] | None = None  # None unless published


@dataclass
class ArticleBook:
    """The article command rules in miniature: the events a run of requests makes, and
    how many published articles each tag then has."""

    author: str = field(default_factory=new_id_str)
    articles: dict[str, _Article] = field(default_factory=dict)

    def create(self, tags: list[str]) -> ArticleDrafted:
        article_id = new_id_str()
        self.articles[article_id] = _Article(1, tags)
        return ArticleDrafted(**self._ids(article_id), version=1, title="t", content="", tags=tags)

    def edit(self, article_id: str, tags: list[str]) -> DraftEdited:
        article = self._next(article_id)
        article.draft_tags = tags
        return DraftEdited(**self._at(article_id), title="t", content="", tags=tags)

    def publish(self, article_id: str) -> ArticlePublished:
        article = self._next(article_id)
        article.published_tags = article.draft_tags
        tags = article.draft_tags
        return ArticlePublished(**self._at(article_id), title="t", content="", tags=tags)

    def withdraw(self, article_id: str) -> ArticleWithdrawn | None:
        if self.articles[article_id].published_tags is None:
            return None  # the command refuses to withdraw what is not published
        self._next(article_id).published_tags = None
        return ArticleWithdrawn(**self._at(article_id))

    def delete(self, article_id: str) -> ArticleDeleted:
        self._next(article_id)
        event = ArticleDeleted(**self._at(article_id))
        del self.articles[article_id]
        return event

    def lost_race(self, article_id: str, tags: list[str]) -> ArticlePublished:
        """A publish decided on a stale read: it carries a version the article has already
        passed, so the read model must ignore it (the book does)."""
        version = self.articles[article_id].version
        return ArticlePublished(
            **self._ids(article_id), version=version, title="t", content="", tags=tags
        )

    def published_per_tag(self) -> Counter[str]:
        return Counter(t for a in self.articles.values() for t in a.published_tags or ())

    def _next(self, article_id: str) -> _Article:
        article = self.articles[article_id]
        article.version += 1
        return article

    def _ids(self, article_id: str) -> dict[str, str]:
        return {"article_id": article_id, "author_id": self.author}

    def _at(self, article_id: str) -> dict[str, str | int]:
        return {**self._ids(article_id), "version": self.articles[article_id].version}


def article_history(
    book: ArticleBook, rng: random.Random, *, events: int, tags: Sequence[str]
) -> list[ArticleEvent]:
    """About ``events`` events of one author's articles: mostly publishing, re-publishing
    under other tags and withdrawing, some deletes, each article with up to five tags."""
    out: list[ArticleEvent] = []
    while len(out) < events:
        ids = list(book.articles)
        roll = rng.random()
        if not ids or roll < 0.15:
            out.append(book.create(rng.sample(list(tags), rng.randint(0, 5))))
            continue
        article_id = rng.choice(ids)
        if roll < 0.35:
            out.append(book.edit(article_id, rng.sample(list(tags), rng.randint(0, 5))))
        elif roll < 0.7:
            out.append(book.publish(article_id))
        elif roll < 0.95:
            withdrawn = book.withdraw(article_id)
            out.extend([withdrawn] if withdrawn is not None else [])
        else:
            out.append(book.delete(article_id))
    return out


async def applied(settings: Settings, projector: str, generation: int = 1) -> int:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM projector_checkpoints "
            "WHERE projector = $1 AND generation = $2",
            projector,
            generation,
        )
        return int(value)
    finally:
        await conn.close()


async def passed(
    settings: Settings, projector: str, position: Position, generation: int = 1
) -> bool:
    """Whether the projector's checkpoints are past every record of ``position`` (a sum of
    checkpoints is not: records others append to the same topics count in it too)."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        for topic, partition, offset in position:
            reached = await conn.fetchval(
                "SELECT next_offset FROM projector_checkpoints WHERE projector = $1 "
                "AND generation = $2 AND topic = $3 AND partition = $4",
                projector,
                generation,
                topic,
                partition,
            )
            if reached is None or reached <= offset:
                return False
        return True
    finally:
        await conn.close()


def projector_env(settings: Settings, *, batch: int) -> dict[str, str]:
    """The environment that points a projector process at ``settings``' log and store."""
    return {
        **os.environ,
        "BLOGHUB_MODE": "test",
        "BLOGHUB_PREFIX": settings.prefix,
        "BLOGHUB_DATABASE_URL": settings.sqlalchemy_url,
        "BLOGHUB_BATCH_MAX_EVENTS": str(batch),
    }


def projector_process(
    settings: Settings, *names: str, log_file: Path, batch: int = 500
) -> subprocess.Popen[bytes]:
    """``bloghub project NAME…`` as a child process; its log goes to ``log_file``."""
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "project", *names],
            env=projector_env(settings, batch=batch),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def users_in_read_model(settings: Settings, generation: int = 1) -> int:
    """How many accounts the users read model holds."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM users_g{generation}.users"))
    finally:
        await conn.close()


async def until_applied(settings: Settings, projector: str, count: int) -> None:
    """Wait until ``projector``'s checkpoints together have passed ``count`` records."""

    async def done() -> bool:
        return await applied(settings, projector) >= count

    await wait_until(done, timeout_s=90)


async def group_settled(settings: Settings, group: str, members: int) -> bool:
    """Whether the consumer group ``group`` is Stable with ``members`` members (each then
    holds its share of the partitions), or Empty when ``members`` is 0."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        # One group a request: this client misreads the broker's answer about several.
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    found = [g for d in described for g in d.to_object()["groups"]]
    state = "Stable" if members else "Empty"
    return bool(found) and all(g["state"] == state and len(g["members"]) == members for g in found)


async def wait_until(condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; a test that needs more than the bound fails."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await condition():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(0.05)


async def once_caught_up(
    send: Callable[[], Awaitable[httpx.Response]], *, timeout_s: float = 60.0
) -> httpx.Response:
    """What a client that honours "retry" ends with: ``send`` again while the answer is
    503 for a read model still behind (``catching_up`` on /v1, ``server`` on /api;
    projectors just started take a moment to be assigned their partitions) or a GET
    marked ``bloghub-stale`` (its wait for the caller's own write ran out of its bound, as
    under a loaded machine's lag: asked again, as a write never is), and the first other
    answer."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        answer = await send()
        if not _still_behind(answer):
            return answer
        if asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.1)


def _still_behind(answer: httpx.Response) -> bool:
    if answer.request.method == "GET" and answer.headers.get("bloghub-stale") == "true":
        return True
    if answer.status_code != 503:
        return False
    body = answer.json()
    return bool(
        body.get("error", {}).get("code") == "catching_up" or "server" in body.get("errors", {})
    )


def against_the_store(max_examples: int) -> settings:
    """Hypothesis settings for examples that each write to a real store: no deadline (a
    round trip's time is the machine's), and a module-scoped rig is allowed."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def recorded(event: Event, *, topic: str, partition: int, offset: int) -> Recorded:
    """An event as if read from ``topic``/``partition`` at ``offset``."""
    env = envelop(event, actor_id=None, request_id=None)
    return Recorded(env, event, topic, partition, offset, 0)


def batches(records: list[Recorded], sizes: list[int]) -> list[list[Recorded]]:
    """``records`` cut into consecutive batches of the given sizes, cycling through them."""
    out: list[list[Recorded]] = []
    at = 0
    for size in itertools.cycle(sizes):
        if at >= len(records):
            return out
        out.append(records[at : at + size])
        at += size
    raise AssertionError("unreachable")


async def replay_generation(
    settings: Settings,
    projector: type[PostgresProjector],
    generation: int,
    *,
    until: int,
    timeout_s: float = 120.0,
) -> None:
    """Build ``generation`` of ``projector`` from offset 0 beside the live one (not
    serving, no cache pre-warming) until its checkpoints sum to ``until``."""
    engine = projector_engine(settings.sqlalchemy_url, pool_size=2)
    redis = make_redis(settings.redis_url.get_secret_value())
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=settings.prefix, redis=redis)
    await dead.start()
    try:
        async with engine.begin() as conn:
            await create_generation(conn, projector.name, generation, activate=False)
        building = projector.build(engine, settings, generation=generation, cache=None)
        building.live = False
        runner = ProjectorRunner(
            building,
            config=RunnerConfig.from_settings(settings),
            registry=registry,
            dead_letters=dead,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))

        async def caught_up() -> bool:
            return await applied(settings, projector.name, generation) >= until

        try:
            await wait_until(caught_up, timeout_s=timeout_s)
        finally:
            stop.set()
            await task
    finally:
        await dead.close()
        await redis.aclose()
        await engine.dispose()


@contextlib.asynccontextmanager
async def second_database(settings: Settings, *, linguistic: bool = False) -> AsyncIterator[str]:
    """Another database on the same server as ``settings``' (a migration's target), dropped
    afterwards; its URL. ``linguistic``: text sorts by ICU's en-US rules there."""
    from tests.conftest import BASE_DSN

    name = f"{settings.sqlalchemy_url.rsplit('/', 1)[1]}_target"
    how = " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"' + (how if linguistic else ""))
    try:
        yield f"{settings.sqlalchemy_url.rsplit('/', 1)[0]}/{name}"
    finally:
        await drop_database(admin, name)
        await admin.close()


async def execute_on(url: str, sql: str, *args: object) -> None:
    """One statement on the database at ``url`` (a SQLAlchemy URL): a row written there as
    that store's own projector would have."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def end_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Where each partition's log ends now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def append_undecodable(bootstrap: str, topic: str, partition: int) -> int:
    """A record no code can decode, at the end of ``partition``; its offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, b"\xff not an event", key=b"x", partition=partition
        )
        return int(sent.offset)
    finally:
        await producer.stop()
