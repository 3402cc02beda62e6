"""What a projector runner is told: its Kafka, its batches and lanes, and the names it
derives from them (its consumer group, the lane of each partition)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from aiokafka import TopicPartition

from bloghub.settings import Settings


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    bootstrap: str
    prefix: str
    batch_max_events: int = 2000
    batch_max_wait_ms: int = 100
    batch_interval_ms: int = 50
    apply_retries: int = 3
    apply_concurrency: int = 2
    # A consumer group of its own instead of the generation's (a migration's fill, which
    # writes one generation into another store beside the live group).
    group: str | None = None
    fetch_max_wait_ms: int = 500
    fetch_behind_wait_ms: int = 20
    processes: int = 1  # processes running this projector side by side (lane_of)

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            batch_max_events=settings.batch_max_events,
            batch_max_wait_ms=settings.batch_max_wait_ms,
            batch_interval_ms=settings.batch_interval_ms,
            apply_retries=settings.apply_retries,
            apply_concurrency=settings.apply_concurrency,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fetch_behind_wait_ms=settings.fetch_behind_wait_ms,
            processes=settings.projector_processes,
        )


def group_id(prefix: str, projector: str, generation: int) -> str:
    return f"{prefix}.{projector}.g{generation}"


def lane_of(tp: TopicPartition, lanes: int, processes: int = 1) -> int:
    """The lane a partition belongs to: fixed by its name, whatever else is assigned, so a
    rebalance never hands a partition with a batch in flight to another lane.

    With ``processes`` running the projector, the group's round-robin assignment gives each
    every ``processes``-th partition of a topic (0, 2, 4 and 1, 3, 5 for two): counted by
    ``partition // processes``, those fill every lane, where counted by the partition they
    all had one parity and, with two lanes, one lane."""
    topic: str = tp.topic
    partition: int = tp.partition
    return (zlib.crc32(topic.encode()) + partition // processes) % lanes
