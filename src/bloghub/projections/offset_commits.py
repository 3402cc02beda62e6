"""Kafka's copy of the projectors' checkpoints, for standard lag tools."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bloghub.projections.port import TP


class OffsetCommitter:
    """Copies the store's checkpoints to Kafka (for standard lag tools) off the write path:
    lanes note what they committed, and one task commits the newest offsets it has, so a
    slow group coordinator never holds up a batch."""

    def __init__(self, consumer: AIOKafkaConsumer, logger: structlog.BoundLogger) -> None:
        self._consumer = consumer
        self._log = logger
        self._due: dict[TP, int] = {}
        self._task: asyncio.Task[None] | None = None

    RETRY_S = 0.5
    FLUSH_S = 5.0

    def note(self, offsets: Mapping[TP, int]) -> None:
        for tp, offset in offsets.items():
            self._due[tp] = max(self._due.get(tp, 0), offset)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_due(), name="kafka-commit")

    async def _commit_due(self) -> None:
        while self._due:
            due, self._due = self._due, {}
            try:
                await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in due.items()})
            except KafkaError as exc:
                # The store's checkpoint is the truth; Kafka's copy only feeds lag tools.
                # Offsets of partitions still ours are tried again (newer ones win).
                self._log.info("projector.kafka_commit_skipped", error=repr(exc))
                ours = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
                for tp, offset in due.items():
                    if tp in ours:
                        self._due[tp] = max(self._due.get(tp, 0), offset)
                await asyncio.sleep(self.RETRY_S)

    async def flush(self) -> None:
        """Wait, bounded, for the last offsets to reach Kafka."""
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._task, self.FLUSH_S)
            except (TimeoutError, KafkaError):
                self._log.info("projector.kafka_commit_abandoned", partitions=len(self._due))
