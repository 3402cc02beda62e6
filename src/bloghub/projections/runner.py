"""The generic projector loop: consume a bounded batch, apply it with its checkpoint in one
atomic step, then commit offsets to Kafka (for standard lag tools) and run after-commit hooks.
The assigned partitions are split into lanes that do this side by side, each partition in
one lane only.

The store's checkpoint is the truth: on every assignment the partitions stay paused until
the consumer has sought to it (see ``gate.py``). A store that is unwell, or an event newer
than the code, makes a partition wait and the heartbeat say so; only an event shown to be
at fault is dead-lettered (see ``isolation.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from bloghub.errors import Transient, Unavailable
from bloghub.events.base import EventRegistry, Recorded
from bloghub.events.topics import topic_for
from bloghub.projections.backoff import Backoff, Stopping, wait_any
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.decoding import PassedOver, decode_fetch
from bloghub.projections.fetch_wait import FetchWait
from bloghub.projections.gate import Gate, Part
from bloghub.projections.heartbeat import Heartbeat, WaitReason
from bloghub.projections.isolation import isolate
from bloghub.projections.offset_commits import OffsetCommitter
from bloghub.projections.port import TP, Projector, RawRecord
from bloghub.projections.runner_config import RunnerConfig, group_id, lane_of
from bloghub.projections.stats import CommitStats

log = structlog.get_logger(__name__)

# How often a consumer tells the group coordinator it lives, and learns of a rebalance.
HEARTBEAT_INTERVAL_MS = 500
Raw = RawRecord

# How long a batch may wait for its store before the heartbeat says the projector waits.
SLOW_STORE_S = 10.0


class _SeekToCheckpoint(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka logs and swallows what a listener raises, and would then read from the
    group's committed offsets: so the listener only pauses, and the seek happens (and is
    retried) in a task of the runner's own."""

    def __init__(self, runner: ProjectorRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._runner.revoked()
        self._runner.commits_held(True)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._runner.assigned(assigned)
        self._runner.commits_held(False)


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
        # Records of events the projector has no use for, known by their headers.
        self._passed_over = PassedOver(registry, projector.passes_over)
        self._dead = dead_letters
        self._heartbeat = heartbeat
        self._stats = stats
        self._log = log.bind(projector=projector.name, generation=projector.generation)
        self._consumer: AIOKafkaConsumer | None = None
        self._gate: Gate | None = None
        self._placing: asyncio.Task[None] | None = None
        self._committer: OffsetCommitter | None = None
        self._fetch_wait: FetchWait | None = None
        self.applied = 0
        self._stop = asyncio.Event()

    @property
    def fetch_wait_ms(self) -> int:
        """How long the broker may hold this runner's next fetch: short while it is
        behind (projections/fetch_wait.py)."""
        if self._fetch_wait is None:
            return self._cfg.fetch_max_wait_ms
        return self._fetch_wait.wait_ms

    @property
    def topics(self) -> list[str]:
        return [topic_for(self._cfg.prefix, f) for f in self.projector.families]

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        try:
            consumer, committer = await self._started(stop)
        except Stopping:
            return  # told to stop while Kafka was still out of reach
        self._fetch_wait = FetchWait(
            consumer, idle_ms=self._cfg.fetch_max_wait_ms, behind_ms=self._cfg.fetch_behind_wait_ms
        )
        self._log.info("projector.started", topics=self.topics)
        # A lane failing stops its siblings at their next batch boundary, not mid-write.
        halt = asyncio.Event()
        lanes = [
            asyncio.create_task(self._lane(i, stop, halt, committer), name=f"lane:{i}")
            for i in range(max(1, self._cfg.apply_concurrency))
        ]
        try:
            await asyncio.gather(*lanes)
        except Stopping:
            pass  # told to stop while waiting: what waits stays unapplied
        finally:
            halt.set()
            placing = self._placing
            self.revoked()
            await asyncio.gather(*lanes, *(placing,) if placing else (), return_exceptions=True)
            await committer.flush()
            if self._stats is not None:
                await self._stats.flush()
            await consumer.stop()
            self._consumer = None
            self._log.info("projector.stopped", applied=self.applied)

    async def _started(self, stop: asyncio.Event) -> tuple[AIOKafkaConsumer, OffsetCommitter]:
        """A consumer that has joined its group. Kafka out of reach (still starting, a blip)
        is waited for as a store is, and said (``STORE`` at ``kafka``), until it answers or
        ``stop`` (``Stopping``). Every try has a fresh consumer: one whose start failed
        cannot start again."""
        backoff = Backoff(first_s=0.2, most_s=5.0)
        while True:
            consumer, committer = self._subscribed()
            try:
                await _unless_stopped(consumer.start(), stop)
            except (KafkaError, OSError, TimeoutError) as exc:
                await self._abandon(consumer)
                self._waiting("kafka", WaitReason.STORE, f"kafka: {exc!r}")
                await backoff.sleep(stop)
                continue
            except BaseException:
                await self._abandon(consumer)
                raise
            self._going("kafka")
            return consumer, committer

    def _subscribed(self) -> tuple[AIOKafkaConsumer, OffsetCommitter]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._cfg.bootstrap,
            group_id=self._cfg.group
            or group_id(self._cfg.prefix, self.projector.name, self.projector.generation),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._cfg.batch_max_events,
            fetch_max_wait_ms=self._cfg.fetch_max_wait_ms,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # A member learns of a rebalance at its next heartbeat. At aiokafka's 3 s, a
            # replay's builder leaving the group it shared with the projector process left
            # its partitions unapplied for 2.6-6 s after the switch (writers waiting on
            # them got 503); at 0.5 s the rest of the group takes them within about a second.
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )
        consumer.subscribe(self.topics, listener=_SeekToCheckpoint(self))
        self._consumer = consumer
        self._gate = Gate(consumer, self._log)
        committer = self._committer = OffsetCommitter(consumer, self._log)
        return consumer, committer

    async def _abandon(self, consumer: AIOKafkaConsumer) -> None:
        self.revoked()
        self._consumer = None
        with contextlib.suppress(Exception):
            await asyncio.shield(consumer.stop())

    async def _lane(
        self, lane: int, stop: asyncio.Event, halt: asyncio.Event, committer: OffsetCommitter
    ) -> None:
        """Fetch, decode and apply the partitions of one lane. Every partition belongs to
        exactly one lane for the life of the process, so order within it holds, while lanes
        write to the store side by side. Within a lane two stages overlap: while batch N is
        applied, batch N+1 is fetched and decoded."""
        consumer, gate, fetch_wait = self._consumer, self._gate, self._fetch_wait
        assert consumer is not None
        assert gate is not None
        assert fetch_wait is not None
        lanes, processes = max(1, self._cfg.apply_concurrency), self._cfg.processes
        applying: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        last_batch, backlog = float("-inf"), False
        try:
            while not (stop.is_set() or halt.is_set()):
                if applying is not None and applying.done():
                    # Raised now, not when the next batch comes: a quiet partition would
                    # otherwise stand still with nothing said.
                    done: asyncio.Task[None] = applying
                    applying = None
                    done.result()
                gate.release_due()
                mine = [tp for tp in consumer.assignment() if lane_of(tp, lanes, processes) == lane]
                if not mine:
                    fetch_wait.lane_read(lane, full=False)
                    await wait_any(self._cfg.batch_max_wait_ms / 1000, stop, halt)
                    continue
                # A busy lane (its last batch began less than an interval ago) lets the
                # interval pass, overlapping the batch being applied, so what arrives
                # meanwhile joins the next batch. After a quiet spell, or behind a full
                # batch (a backlog), it reads at once.
                due = last_batch + self._cfg.batch_interval_ms / 1000 - loop.time()
                if due > 0 and not backlog:
                    await wait_any(due, stop, halt)
                    continue  # the assignment may have changed meanwhile
                try:
                    batches = await consumer.getmany(
                        *mine,
                        timeout_ms=self._cfg.batch_max_wait_ms,
                        max_records=self._cfg.batch_max_events,
                    )
                except IllegalStateError:
                    continue  # a partition of ours was revoked meanwhile
                full = sum(map(len, batches.values())) >= self._cfg.batch_max_events
                fetch_wait.lane_read(lane, full=full)
                if not batches:
                    continue
                last_batch, backlog = loop.time(), full
                parts = await self.decode_batch(batches)
                if applying is not None:
                    await applying
                applying = asyncio.create_task(self.apply_batch(parts, committer))
            if applying is not None:
                await applying
        except BaseException:
            halt.set()
            if applying is not None and not applying.done():
                applying.cancel()
                await asyncio.gather(applying, return_exceptions=True)
            raise

    def assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._gate is not None
        self.revoked()
        self._no_waits_but(assigned)
        self._gate.unplaced(assigned)
        self._placing = asyncio.create_task(self._place(assigned), name="place")

    def commits_held(self, held: bool) -> None:
        """Kafka's copy of the checkpoints waits while the group rebalances."""
        if self._committer is not None:
            if held:
                self._committer.hold()
            else:
                self._committer.resume()

    def revoked(self) -> None:
        if self._placing is not None:
            self._placing.cancel()
            self._placing = None

    async def _place(self, assigned: set[TopicPartition]) -> None:
        """Seek to the stored checkpoints, again and again while the store cannot say
        where they are: the partitions stay paused meanwhile, so nothing is read from
        Kafka's committed offsets, which may run ahead of the store."""
        backoff = Backoff(most_s=5.0)
        while self._consumer is not None:
            ours = {tp for tp in assigned if tp in self._consumer.assignment()}
            try:
                await self.seek_to_checkpoints(ours)
            except Exception as exc:
                self._waiting("assignment", WaitReason.STORE, f"checkpoints: {exc!r}")
                try:
                    await backoff.sleep(self._stop)
                except Stopping:
                    return
                continue
            self._going("assignment")
            return

    async def seek_to_checkpoints(self, assigned: set[TopicPartition]) -> None:
        consumer, gate = self._consumer, self._gate
        if consumer is None or gate is None or not assigned:
            return
        stored = await self.projector.load_checkpoints(
            [(tp.topic, tp.partition) for tp in assigned]
        )
        missing = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
        # No checkpoint means nothing applied yet: start at the log's first record, whatever
        # Kafka's committed offset for the group says.
        firsts = await consumer.beginning_offsets(missing) if missing else {}
        placed = {}
        for tp in assigned:
            key = (tp.topic, tp.partition)
            placed[key] = stored.get(key, firsts.get(tp, 0))
            gate.placed(key, placed[key])
        if self._committer is not None:
            # Kafka's copy says where this member starts at once, not at the partition's
            # next batch: a partition gone quiet after a replay's switch (its builder
            # applied it and left, committing nothing there) or after a generation was
            # dropped and built again under its number (its group's old offsets) would show
            # lag it has not, or none it has, for as long as it stays quiet.
            self._committer.note(placed)
        self._log.info("projector.assigned", partitions=len(assigned), with_checkpoint=len(stored))

    async def decode_batch(self, batches: Mapping[TopicPartition, Sequence[Raw]]) -> list[Part]:
        """Decode a fetch (``decoding.py``)."""
        return decode_fetch(self._registry, batches, self._passed_over)

    async def apply_batch(self, parts: Sequence[Part], committer: OffsetCommitter) -> None:
        assert self._gate is not None
        parts = await self._dead_letter_undecodable(self._gate.admit(parts))
        if not parts:
            return
        try:
            fresh, reached = await self._apply_or_isolate(parts)
        except Stopping:
            raise
        except Exception as exc:
            # Not even the checkpoints move: wait and read the batch again, rather than
            # stop every projector of the process.
            for part in parts:
                self._hold(part.tp, None, WaitReason.STORE, repr(exc))
            return
        self.applied += len(fresh)
        if self._heartbeat is not None:
            self._heartbeat.applied = self.applied
        self._gate.advanced(reached)
        committer.note(reached)
        for part in parts:
            if part.behind is not None and reached[part.tp] == part.end:
                self._hold(part.tp, part.end, WaitReason.CODE, part.behind)
            elif reached[part.tp] == part.end:
                self._going(_where(part.tp))
        if self._stats is not None:
            self._stats.committed(len(fresh))
        if fresh:
            await self._after_commit(fresh)

    async def _dead_letter_undecodable(self, parts: Sequence[Part]) -> list[Part]:
        """The parts whose undecodable records are now durable in the dead-letter topic
        (before any checkpoint can pass them), or that have none. Dead letters that cannot
        be sent are a store that is unwell: their partition is held (``STORE``) where it
        stands, nothing of it applied, and read again later; the others go on. Once one
        send fails, the other parts that need one are held without trying: each try of an
        unreachable queue could take its whole timeout."""
        assert self._gate is not None
        kept: list[Part] = []
        failed: Exception | None = None
        for part in parts:
            if part.undecodable and failed is None:
                try:
                    for record, error in part.undecodable:
                        await self._dead_letter(record, error)
                except Exception as exc:
                    failed = exc
            if part.undecodable and failed is not None:
                detail = f"dead letters: {failed!r}"
                self._hold(part.tp, None, WaitReason.STORE, detail)
                continue
            kept.append(part)
        return kept

    async def _apply_or_isolate(
        self, parts: Sequence[Part]
    ) -> tuple[Sequence[Recorded], dict[TP, int]]:
        """Apply the batch; if it keeps failing, apply its events one at a time, so that an
        event at fault is dead-lettered and the rest land, or a partition whose events all
        fail halts and waits."""
        good = [r for p in parts for r in p.good]
        ends = {p.tp: p.end for p in parts}
        try:
            return await self._apply_with_retries(good, ends), ends
        except Stopping:
            raise
        except Exception as exc:
            self._log.warning("projector.batch_failed", error=repr(exc), size=len(good))
        by_tp = {p.tp: p for p in parts}

        async def dead_letter(rec: Recorded, exc: Exception) -> None:
            self._log.error(
                "projector.poison_event",
                event_type=rec.envelope.type,
                event_id=rec.envelope.event_id,
                offset=rec.offset,
                error=repr(exc),
            )
            try:
                await self._dead_letter(
                    by_tp[(rec.topic, rec.partition)].raw_at(rec.offset), repr(exc)
                )
            except Exception as failed:
                # Raised through the isolation: the batch is held as a whole (STORE) and
                # read again; what already applied is below its checkpoint by then.
                raise DeadLetterFailed(f"dead letters: {failed!r}") from failed

        out = await isolate(
            {p.tp: p.good for p in parts}, ends, self._apply_with_retries, dead_letter
        )
        for tp, error in out.halted.items():
            self._hold(tp, out.reached[tp], WaitReason.STORE, f"every event fails: {error!r}")
        return out.fresh, out.reached

    async def _apply_with_retries(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        """A store that is unwell is waited for, as long as it takes (never a reason to
        dead-letter); any other failure is retried a bounded number of times, then raised."""
        failures, backoff = 0, Backoff()
        while True:
            # A store that hangs rather than refuses (a search bulk gets 120 s) is said to
            # be waited for once it has kept a batch this long, not only once it gives up.
            slow = asyncio.get_running_loop().call_later(
                SLOW_STORE_S,
                self._waiting,
                "store",
                WaitReason.STORE,
                f"the store has not answered a batch for {SLOW_STORE_S:.0f} s",
            )
            try:
                fresh = await self.projector.apply(records, next_offsets)
            except (Transient, Unavailable) as exc:
                self._waiting("store", WaitReason.STORE, repr(exc))
            except Exception:
                failures += 1
                if failures >= self._cfg.apply_retries:
                    raise
            else:
                self._going("store")
                return fresh
            finally:
                slow.cancel()
            await backoff.sleep(self._stop)

    def _hold(self, tp: TP, offset: int | None, reason: WaitReason, detail: str) -> None:
        """Hold ``tp`` at ``offset`` (where it stands, if not given) and say so."""
        assert self._gate is not None
        held = self._gate.hold(tp, offset)
        if held is None:
            # Not placed since a rebalance (assigned anew, or no longer ours): whoever
            # places it reads it again from the store's checkpoint.
            self._log.warning(
                "projector.failed_while_unplaced",
                where=_where(tp),
                reason=reason.value,
                detail=detail,
            )
            return
        at, pause = held
        self._waiting(_where(tp), reason, detail, offset=at, retry_in_s=pause)

    def _waiting(self, where: str, reason: WaitReason, detail: str, **more: object) -> None:
        self._log.warning(
            "projector.waiting", where=where, reason=reason.value, detail=detail, **more
        )
        if self._heartbeat is not None:
            self._heartbeat.wait(where, reason, detail)

    def _going(self, where: str) -> None:
        if self._heartbeat is not None:
            self._heartbeat.resume(where)

    def _no_waits_but(self, assigned: set[TopicPartition]) -> None:
        """A partition gone to another instance waits here no more (its new holder says
        whether it waits): the dashboard showed its wait until this instance stopped."""
        if self._heartbeat is None:
            return
        held = {_where((tp.topic, tp.partition)) for tp in assigned}
        for where in self._heartbeat.waiting_on():
            if _PARTITION in where and where not in held:
                self._heartbeat.resume(where)

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


async def _unless_stopped(step: Awaitable[None], stop: asyncio.Event) -> None:
    """Await ``step``; once ``stop`` is set first, cancel it and raise ``Stopping``."""
    task = asyncio.ensure_future(step)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise Stopping
    task.result()


class DeadLetterFailed(Exception):
    """A dead letter could not be made durable: the store it goes to is unwell."""


_PARTITION = "|"  # in what a partition waits on, and in nothing else that waits


def _where(tp: TP) -> str:
    return f"{tp[0]}{_PARTITION}{tp[1]}"
