"""The topic catalog as the broker keeps it: created with the settings that keep events
forever and refuse under-replicated writes."""

from __future__ import annotations

import secrets

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.events.topics import catalog
from bloghub.settings import Settings


async def topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        wanted = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        (answer,) = await admin.describe_configs(wanted)
        return {res[3]: {e[0]: e[1] for e in res[4]} for res in answer.resources}
    finally:
        await admin.close()


async def test_created_topics_need_as_many_in_sync_replicas_as_the_factor_allows(
    settings: Settings,
) -> None:
    prefix = f"{settings.prefix}-k{secrets.token_hex(2)}"
    created = await ensure_topics(settings.kafka_bootstrap, prefix, partitions=1, replication=1)
    try:
        assert sorted(created) == sorted(catalog(prefix))
        configs = await topic_configs(settings.kafka_bootstrap, created)
        for topic in created:
            assert configs[topic]["min.insync.replicas"] == "1"  # one broker: one replica
            assert configs[topic]["retention.ms"] == "-1"
    finally:
        await delete_topics(settings.kafka_bootstrap, prefix)
