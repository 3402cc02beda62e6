"""Kafka's copy of the projectors' checkpoints, for standard lag tools."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import suppress

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from bloghub.projections.port import TP

# A commit refused for one of these means the group is rebalancing or has moved on to a
# generation this member is not in yet. aiokafka answers each by asking to rejoin, so
# committing again before the next assignment would restart the rebalance, again and
# again for every member that does it: the group would never settle.
_REBALANCING = (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


class OffsetCommitter:
    """Copies the store's checkpoints to Kafka (for standard lag tools) off the write path:
    lanes note what they committed, and one task commits the newest offsets it has, so a
    slow group coordinator never holds up a batch. Between a revocation (or a commit the
    rebalance refused) and the next assignment it commits nothing: the store's checkpoint
    is the truth, and the next batch after the assignment brings Kafka's copy up again."""

    def __init__(self, consumer: AIOKafkaConsumer, logger: structlog.BoundLogger) -> None:
        self._consumer = consumer
        self._log = logger
        self._due: dict[TP, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._held = False
        self._hurry = asyncio.Event()

    def hold(self) -> None:
        """The group rebalances: commit nothing until ``resume``, and forget what was due."""
        self._held = True
        self._due.clear()

    def resume(self) -> None:
        self._held = False

    RETRY_S = 0.5
    FLUSH_S = 5.0
    # At most one commit per interval: at low rates each batch holds an event or two, and
    # a commit after every batch of every projector was a twelfth of the projectors'
    # process under a steady stream of drafts. Lag tools see the copy at most this late.
    INTERVAL_S = 1.0

    def note(self, offsets: Mapping[TP, int]) -> None:
        if self._held:
            return
        for tp, offset in offsets.items():
            self._due[tp] = max(self._due.get(tp, 0), offset)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_due(), name="kafka-commit")

    async def _commit_due(self) -> None:
        while self._due and not self._held:
            ours = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
            due = {tp: o for tp, o in self._due.items() if tp in ours}
            self._due = {}
            if not due:
                return
            try:
                await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in due.items()})
                if not self._hurry.is_set():
                    # What lanes note meanwhile goes in the next commit.
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._hurry.wait(), self.INTERVAL_S)
            except _REBALANCING as exc:
                self._log.info("projector.kafka_commit_held_for_rebalance", error=repr(exc))
                self.hold()
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
        self._hurry.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._task, self.FLUSH_S)
            except (TimeoutError, KafkaError):
                self._log.info("projector.kafka_commit_abandoned", partitions=len(self._due))
