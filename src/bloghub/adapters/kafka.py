"""Kafka admin: creates the topic catalog at start-up (idempotent)."""

from __future__ import annotations

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bloghub.events.topics import TOPIC_CONFIG, catalog

log = structlog.get_logger(__name__)


async def ensure_topics(
    bootstrap: str, prefix: str, *, partitions: int, replication: int
) -> list[str]:
    """Create every catalog topic that does not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in catalog(prefix) if t not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=dict(TOPIC_CONFIG),
            )
            for t in wanted
        ]
        response = await admin.create_topics(new)
        for topic, code, *_ in response.topic_errors:
            # Another process may create the same topic at the same moment.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"could not create topic {topic}: error code {code}")
        log.info("topics.created", topics=wanted, partitions=partitions)
        return wanted
    finally:
        await admin.close()
