"""Kafka admin: creates the topic catalog at start-up (idempotent) and waits until the
broker serves it; drops the catalog of a throw-away prefix (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bloghub.events.topics import TOPIC_CONFIG, catalog

log = structlog.get_logger(__name__)


async def ensure_topics(
    bootstrap: str, prefix: str, *, partitions: int, replication: int
) -> list[str]:
    """Create every catalog topic that does not exist yet, then wait until the broker
    serves every one of them; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        created = await _create_missing(admin, prefix, partitions, replication)
        await _until_served(admin, catalog(prefix))
        return created
    finally:
        await admin.close()


def min_insync_replicas(replication: int) -> int:
    """A majority of the replicas: with ``acks=all`` a write is acknowledged only once that
    many hold it, so losing any minority of brokers loses no acknowledged write (2 of 3)."""
    return replication // 2 + 1


def topic_config(replication: int) -> dict[str, str]:
    return {**TOPIC_CONFIG, "min.insync.replicas": str(min_insync_replicas(replication))}


def new_topics(topics: Sequence[str], *, partitions: int, replication: int) -> list[NewTopic]:
    return [
        NewTopic(
            t,
            num_partitions=partitions,
            replication_factor=replication,
            topic_configs=topic_config(replication),
        )
        for t in topics
    ]


async def _create_missing(
    admin: AIOKafkaAdminClient, prefix: str, partitions: int, replication: int
) -> list[str]:
    existing = set(await admin.list_topics())
    wanted = [t for t in catalog(prefix) if t not in existing]
    if wanted:
        new = new_topics(wanted, partitions=partitions, replication=replication)
        response = await admin.create_topics(new)
        for topic, code, *_ in response.topic_errors:
            # Another process may create the same topic at the same moment.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"could not create topic {topic}: error code {code}")
        log.info("topics.created", topics=wanted, partitions=partitions)
    return wanted


async def _until_served(
    admin: AIOKafkaAdminClient, topics: Sequence[str], timeout_s: float = 60.0
) -> None:
    """A topic the controller created may not be in a just-started broker's metadata yet;
    an append to it then fails as an unknown topic. Wait until every partition has a
    leader."""
    deadline = time.monotonic() + timeout_s
    while pending := _not_served(await admin.describe_topics(list(topics))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics not served after {timeout_s:.0f}s: {', '.join(pending)}")
        await asyncio.sleep(0.1)


def _not_served(described: list[dict[str, Any]]) -> list[str]:
    return [
        t["topic"]
        for t in described
        if t["error_code"] != 0
        or not t["partitions"]
        or any(p["error_code"] != 0 or p["leader"] < 0 for p in t["partitions"])
    ]


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete the catalog topics of ``prefix``; the ones deleted. Event topics keep
    everything forever, so a test run's or a benchmark's must not outlive it: thousands of
    stray partitions cost the broker memory."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [t for t in catalog(prefix) if t in existing]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()
