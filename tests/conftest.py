"""Fixtures on the real services. Every test session gets a fresh topic prefix, a fresh
database and its own Redis key prefix, so runs never see each other's data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette

from bloghub.adapters.kafka import delete_topics
from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.databases import drop_database
from bloghub.adapters.redis import make_redis
from bloghub.api.app import create_app
from bloghub.bootstrap import Container, prepare_topics
from bloghub.cli import upgrade_database
from bloghub.events.log import EventLog
from bloghub.projections.worker import run_projectors
from bloghub.settings import Mode, Settings
from tests.loopback import serve_asgi

# The loopback SMS gateway fixture, for integration and e2e tests alike; what the event
# loop's tasks wait on, in a failed test's report.
pytest_plugins = ["tests.sms_gateway", "tests.task_dump"]

BASE_DSN = os.environ.get(
    "BLOGHUB_TEST_ADMIN_DSN", "postgresql://bloghub:bloghub@127.0.0.1:5432/bloghub"
)


def make_settings(prefix: str, database: str, **overrides: object) -> Settings:
    url = BASE_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    values: dict[str, object] = {
        "mode": Mode.TEST,
        "prefix": prefix,
        "database_url": f"{url}/{database}",
        "topic_partitions": 3,
        "password_hash_scheme": "argon2",
        "ops_sample_every_s": 0.5,
        "ops_state_window_s": 4.0,
        # The suite sends thousands of requests from one address within a minute.
        "rate_ip_per_minute": 1_000_000,
        "rate_user_per_minute": 1_000_000,
        "login_failures_per_ip": 1_000_000,
        "sms_codes_per_ip_per_hour": 1_000_000,
        "sms_checks_per_ip_per_hour": 1_000_000,
        "ops_token_failures_per_minute": 1_000_000,
        # Tests name their client address in X-Forwarded-For, as a proxy on loopback would.
        "trusted_proxies": ["127.0.0.1"],
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def run_id() -> str:
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
async def database(run_id: str) -> AsyncIterator[str]:
    name = f"bloghub_t{run_id}"
    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await drop_database(admin, name)
        await admin.close()


async def delete_keys(s: Settings) -> None:
    """The Redis keys of a prefix (a projector's progress marks, say). A Redis a test
    stopped (its own, private one) took its keys with it."""
    redis = make_redis(s.redis_url.get_secret_value())
    try:
        async for key in redis.scan_iter(match=f"{s.prefix}:*", count=1000):
            await redis.delete(key)
    except (RedisConnectionError, RedisTimeoutError):
        pass
    finally:
        await redis.aclose()


@pytest.fixture(scope="session")
async def settings(run_id: str, database: str) -> AsyncIterator[Settings]:
    s = make_settings(f"t{run_id}", database)
    await asyncio.to_thread(upgrade_database, s)
    await prepare_topics(s)
    yield s
    # Every Redis key and topic of this run starts with its prefix; leave nothing behind.
    redis = make_redis(s.redis_url.get_secret_value())
    async for key in redis.scan_iter(match=f"t{run_id}*", count=1000):
        await redis.delete(key)
    await redis.aclose()
    await delete_topics(s.kafka_bootstrap, s.prefix)
    await delete_indexes(s)
    await delete_groups(s.kafka_bootstrap, s.prefix)


async def delete_groups(bootstrap: str, prefix: str) -> None:
    """The consumer groups of a run's prefix, its private deployments' too (``t<run>-name``):
    the broker keeps an empty group until its offsets expire, a week on, and each run
    made dozens. One that still has members (a consumer not stopped) is left; the broker
    says so per group, and this asks no more."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        for group, *_ in await admin.list_consumer_groups():
            if group.startswith((f"{prefix}.", f"{prefix}-")):
                # aiokafka's admin client has no call for it: the protocol's own request.
                coordinator = await admin.find_coordinator(group)
                await admin._client.send(coordinator, DeleteGroupsRequest([group]))
    finally:
        await admin.close()


async def delete_indexes(s: Settings) -> None:
    """The search indexes of a run's prefix (the search projectors make them)."""
    search = make_opensearch(s.opensearch_url)
    try:
        await search.indices.delete(index=f"{s.prefix}-*", ignore_unavailable=True)
    finally:
        await search.close()


@pytest.fixture(scope="session")
async def event_log(settings: Settings) -> AsyncIterator[EventLog]:
    log = EventLog.from_settings(settings)
    await log.start()
    yield log
    await log.close()


@contextlib.asynccontextmanager
async def projecting(settings: Settings, *names: str) -> AsyncIterator[None]:
    """The named projectors (every one if none is named) running in this event loop until
    the block ends; they drain on leaving."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_projectors(settings, list(names), stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@pytest.fixture(scope="session")
async def projectors(settings: Settings) -> AsyncIterator[None]:
    """Every projector running in the background for the whole session."""
    async with projecting(settings):
        yield


@dataclass(frozen=True)
class LiveServer:
    app: Starlette
    url: str

    @property
    def container(self) -> Container:
        c: Container = self.app.state.container
        return c


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[LiveServer]:
    """The real app (with its lifespan) on a loopback port, in this event loop."""
    app = create_app(settings)
    async with serve_asgi(app, lifespan="on") as url:
        yield LiveServer(app, url)


@pytest.fixture(scope="session")
async def live_api(settings: Settings, projectors: None) -> AsyncIterator[LiveServer]:
    async with serve(settings) as live:
        yield live


@pytest.fixture
async def client(live_api: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=live_api.url, headers={"user-agent": "bloghub-tests/1"}, timeout=10
    ) as c:
        yield c


@pytest.fixture
def unique_email() -> Callable[[], str]:
    def make() -> str:
        return f"user-{secrets.token_hex(6)}@example.com"

    return make


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the test run's Redis, closed after the test."""
    client = make_redis(settings.redis_url.get_secret_value())
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def pg(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` from the beginning to its current end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp, first in (await consumer.beginning_offsets(parts)).items():
            consumer.seek(tp, first)
        out: list[Any] = []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=500)
            for recs in batches.values():
                out.extend(r for r in recs if r.offset < ends[TopicPartition(r.topic, r.partition)])
        return out
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def isolated(run_id: str, name: str, **overrides: object) -> AsyncIterator[Settings]:
    """A private prefix and database, for tests that run their own projector processes."""
    database = f"bloghub_t{run_id}_{name}"
    admin = await asyncpg.connect(BASE_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    s = make_settings(f"t{run_id}-{name}", database, **overrides)
    try:
        await asyncio.to_thread(upgrade_database, s)
        await prepare_topics(s)
        yield s
    finally:
        # A failed test's topics, indexes and keys go too: the services outlive the run.
        try:
            await delete_topics(s.kafka_bootstrap, s.prefix)
            await delete_indexes(s)
            await delete_keys(s)
        finally:
            await drop_database(admin, database)
            await admin.close()
