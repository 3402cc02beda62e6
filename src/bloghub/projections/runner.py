"""The generic projector loop: consume a bounded batch, apply it with its checkpoint in one
atomic step, then commit offsets to Kafka (for standard lag tools) and run after-commit hooks.
The assigned partitions are split into lanes that do this side by side, each partition in
one lane only.

The store's checkpoint is the truth: on every assignment the consumer seeks to it.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from bloghub.errors import Transient, Unavailable
from bloghub.events.base import EventRegistry, Recorded
from bloghub.events.codec import UndecodableEvent, decode
from bloghub.events.topics import topic_for
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.heartbeat import Heartbeat
from bloghub.projections.port import TP, Projector, RawRecord
from bloghub.projections.stats import CommitStats
from bloghub.settings import Settings

log = structlog.get_logger(__name__)
Raw = RawRecord


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    bootstrap: str
    prefix: str
    batch_max_events: int = 2000
    batch_max_wait_ms: int = 100
    apply_retries: int = 3
    apply_concurrency: int = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            batch_max_events=settings.batch_max_events,
            batch_max_wait_ms=settings.batch_max_wait_ms,
            apply_retries=settings.apply_retries,
            apply_concurrency=settings.apply_concurrency,
        )


def group_id(prefix: str, projector: str, generation: int) -> str:
    return f"{prefix}.{projector}.g{generation}"


class _SeekToCheckpoint(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectorRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner.seek_to_checkpoints(assigned)


class ProjectorRunner:
    def __init__(
        self,
        projector: Projector,
        *,
        config: RunnerConfig,
        registry: EventRegistry,
        dead_letters: DeadLetters,
        heartbeat: Heartbeat | None = None,
        stats: CommitStats | None = None,
    ) -> None:
        self.projector = projector
        self._cfg = config
        self._registry = registry
        self._dead = dead_letters
        self._heartbeat = heartbeat
        self._stats = stats
        self._log = log.bind(projector=projector.name, generation=projector.generation)
        self._consumer: AIOKafkaConsumer | None = None
        self.applied = 0
        self._stop = asyncio.Event()

    @property
    def topics(self) -> list[str]:
        return [topic_for(self._cfg.prefix, f) for f in self.projector.families]

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._cfg.bootstrap,
            group_id=group_id(self._cfg.prefix, self.projector.name, self.projector.generation),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._cfg.batch_max_events,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        consumer.subscribe(self.topics, listener=_SeekToCheckpoint(self))
        self._consumer = consumer
        committer = _OffsetCommitter(consumer, self._log)
        await consumer.start()
        self._log.info("projector.started", topics=self.topics)
        # A lane failing stops its siblings at their next batch boundary, not mid-write.
        halt = asyncio.Event()
        lanes = [
            asyncio.create_task(self._lane(i, stop, halt, committer), name=f"lane:{i}")
            for i in range(max(1, self._cfg.apply_concurrency))
        ]
        try:
            await asyncio.gather(*lanes)
        finally:
            halt.set()
            await asyncio.gather(*lanes, return_exceptions=True)
            await committer.flush()
            await consumer.stop()
            self._consumer = None
            self._log.info("projector.stopped", applied=self.applied)

    async def _lane(
        self, lane: int, stop: asyncio.Event, halt: asyncio.Event, committer: _OffsetCommitter
    ) -> None:
        """Fetch, decode and apply the partitions of one lane. Every partition belongs to
        exactly one lane for the life of the process, so order within it holds, while lanes
        write to the store side by side. Within a lane two stages overlap: while batch N is
        applied, batch N+1 is fetched and decoded."""
        consumer = self._consumer
        assert consumer is not None
        lanes = max(1, self._cfg.apply_concurrency)
        applying: asyncio.Task[None] | None = None
        try:
            while not (stop.is_set() or halt.is_set()):
                mine = [tp for tp in consumer.assignment() if lane_of(tp, lanes) == lane]
                if not mine:
                    await _pause(self._cfg.batch_max_wait_ms, stop, halt)
                    continue
                try:
                    batches = await consumer.getmany(
                        *mine,
                        timeout_ms=self._cfg.batch_max_wait_ms,
                        max_records=self._cfg.batch_max_events,
                    )
                except IllegalStateError:
                    continue  # a partition of ours was revoked meanwhile
                if not batches:
                    continue
                raw = [r for recs in batches.values() for r in recs]
                # A partition's records come in offset order: its last one says where it ends.
                ends = {
                    (tp.topic, tp.partition): recs[-1].offset + 1 for tp, recs in batches.items()
                }
                good = await self.decode_batch(raw)
                if applying is not None:
                    await applying
                applying = asyncio.create_task(self.apply_batch(raw, good, committer, ends))
            if applying is not None:
                await applying
        except BaseException:
            halt.set()
            if applying is not None and not applying.done():
                applying.cancel()
                await asyncio.gather(applying, return_exceptions=True)
            raise

    async def seek_to_checkpoints(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is None or not assigned:
            return
        stored = await self.projector.load_checkpoints(
            [(tp.topic, tp.partition) for tp in assigned]
        )
        missing = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
        # No checkpoint means nothing applied yet: start at the log's first record, whatever
        # Kafka's committed offset for the group says.
        firsts = await consumer.beginning_offsets(missing) if missing else {}
        for tp in assigned:
            consumer.seek(tp, stored.get((tp.topic, tp.partition), firsts.get(tp, 0)))
        self._log.info("projector.assigned", partitions=len(assigned), with_checkpoint=len(stored))

    async def decode_batch(self, raw: Sequence[Raw]) -> list[Recorded]:
        """Decode a batch; what cannot be decoded is dead-lettered now, before any
        checkpoint can pass it."""
        good: list[Recorded] = []
        for record in raw:
            try:
                good.append(self._decode(record))
            except (UndecodableEvent, LookupError, ValueError) as exc:
                await self._dead_letter(record, f"undecodable: {exc}")
        return good

    async def apply_batch(
        self,
        raw: Sequence[Raw],
        good: Sequence[Recorded],
        committer: _OffsetCommitter,
        next_offsets: Mapping[TP, int],
    ) -> None:
        fresh = await self._apply_or_isolate(raw, good, next_offsets)
        self.applied += len(fresh)
        if self._heartbeat is not None:
            self._heartbeat.applied = self.applied
        committer.note(next_offsets)
        if self._stats is not None:
            await self._stats.committed(len(fresh))
        if fresh:
            await self._after_commit(fresh)

    async def _apply_or_isolate(
        self, raw: Sequence[Raw], good: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        """Apply the batch; if it keeps failing, apply its events one at a time, so the
        poison ones are dead-lettered and the rest land."""
        try:
            return await self._apply_with_retries(good, next_offsets)
        except Unavailable:
            raise
        except Exception as exc:  # one bad event must not stop the projector
            self._log.warning("projector.batch_failed", error=repr(exc), size=len(good))
            return await self._apply_one_by_one(good, raw, next_offsets)

    def _decode(self, record: Raw) -> Recorded:
        envelope = decode(record.value)
        event = self._registry.materialise(envelope)
        return Recorded(
            envelope, event, record.topic, record.partition, record.offset, record.timestamp
        )

    async def _apply_with_retries(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        """A store that is down is waited for (never a reason to dead-letter); any other
        failure is retried a bounded number of times and then raised."""
        failures, delay = 0, 0.05
        while True:
            try:
                return await self.projector.apply(records, next_offsets)
            except (Transient, Unavailable) as exc:
                self._log.warning("projector.store_unavailable", error=repr(exc))
            except Exception:
                failures += 1
                if failures >= self._cfg.apply_retries:
                    raise
            if self._stop.is_set() and failures == 0:
                raise Unavailable("stopping while the store is unavailable")
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)

    async def _apply_one_by_one(
        self, records: Sequence[Recorded], raw: Sequence[Raw], next_offsets: Mapping[TP, int]
    ) -> list[Recorded]:
        by_offset = {(r.topic, r.partition, r.offset): r for r in raw}
        fresh: list[Recorded] = []
        for rec in records:
            tp = (rec.topic, rec.partition)
            try:
                fresh += await self._apply_with_retries([rec], {tp: rec.offset + 1})
            except Unavailable:
                raise
            except Exception as exc:
                self._log.error(
                    "projector.poison_event",
                    event_type=rec.envelope.type,
                    event_id=rec.envelope.event_id,
                    offset=rec.offset,
                    error=repr(exc),
                )
                await self._dead_letter(
                    by_offset[(rec.topic, rec.partition, rec.offset)], repr(exc)
                )
                await self._apply_with_retries([], {tp: rec.offset + 1})
        # Records that were dead-lettered at decode time still need the checkpoint moved.
        await self._apply_with_retries([], next_offsets)
        return fresh

    async def _dead_letter(self, record: Raw, error: str) -> None:
        self._log.error(
            "projector.dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=error,
        )
        await self._dead.send(self.projector.name, record, error)

    async def _after_commit(self, records: Sequence[Recorded]) -> None:
        try:
            await self.projector.after_commit(records)
        except Exception as exc:
            self._log.warning("projector.after_commit_failed", error=repr(exc))


def lane_of(tp: TopicPartition, lanes: int) -> int:
    """The lane a partition belongs to: fixed by its name, whatever else is assigned, so a
    rebalance never hands a partition with a batch in flight to another lane."""
    topic: str = tp.topic
    partition: int = tp.partition
    return (zlib.crc32(topic.encode()) + partition) % lanes


async def _pause(ms: int, *events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=ms / 1000, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class _OffsetCommitter:
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
