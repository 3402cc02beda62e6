"""Consumer-group lag per partition: in messages, and in seconds behind the oldest record the
group has not consumed yet (its real timestamp, never an interpolation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bloghub.errors import Unavailable

log = structlog.get_logger(__name__)

TP = tuple[str, int]


class LagFigures(NamedTuple):
    position: int
    lag: int
    lag_seconds: float | None


def effective_position(committed: int | None, log_start: int) -> int:
    # Records below the retention floor are gone: a group behind it resumes at the floor.
    return log_start if committed is None else max(committed, log_start)


def partition_lag(
    *,
    end_offset: int,
    log_start: int,
    committed: int | None,
    oldest_timestamp_ms: int | None,
    now_ms: int,
) -> LagFigures:
    """Where the group resumes, how many records it is behind, and how old the oldest is."""
    position = effective_position(committed, log_start)
    lag = max(0, end_offset - position)
    seconds: float | None
    if lag == 0:
        seconds = 0.0
    elif oldest_timestamp_ms is None or oldest_timestamp_ms < 0:
        # A record we could not read (or one without a timestamp) has no honest age.
        seconds = None
    else:
        # The producer's clock may run ahead of ours; being behind is never negative.
        seconds = max(0.0, (now_ms - oldest_timestamp_ms) / 1000)
    return LagFigures(position, lag, seconds)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    log_start: int
    committed: int | None
    lag: int
    lag_seconds: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "end_offset": self.end_offset,
            "log_start": self.log_start,
            "committed": self.committed,
            "lag": self.lag,
            "lag_seconds": self.lag_seconds,
        }


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    partitions: tuple[PartitionLag, ...]
    lag: int
    lag_seconds: float | None

    @classmethod
    def of(cls, group: str, partitions: Iterable[PartitionLag]) -> GroupLag:
        parts = tuple(partitions)
        known = [p.lag_seconds for p in parts if p.lag_seconds is not None]
        lag = sum(p.lag for p in parts)
        # None only when every lagging partition's age is unknown: a guess would mislead.
        seconds = max(known) if known else (0.0 if lag == 0 else None)
        return cls(group, parts, lag, seconds)

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "lag": self.lag,
            "lag_seconds": self.lag_seconds,
            "partitions": [p.to_json() for p in self.partitions],
        }


class LagReader:
    """Reads lag for any consumer groups with one admin client and one group-less consumer,
    both kept for the reader's whole life."""

    def __init__(self, bootstrap: str, prefix: str, *, fetch_bound_s: float = 2.0) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._fetch_bound_s = fetch_bound_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # One consumer has one position per partition: concurrent reads would fight over it.
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=10_000)
        await admin.start()
        # Made once the admin client is up: one made and never started (Kafka unreachable)
        # is left unclosed, and says so on stderr after the command's own error.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._prefix}.lag-reader",
            group_id=None,
            enable_auto_commit=False,
            # If retention passes our seek target mid-read, the floor is the oldest record.
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
            # The group-less consumer's coordinator starts a task of its own; a stop before
            # that task first ran awaits it cancelled, and the stop raises CancelledError.
            await asyncio.sleep(0)
        except BaseException:
            await admin.close()
            raise
        self._admin, self._consumer = admin, consumer

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        try:
            if consumer is not None:
                await consumer.stop()
        finally:
            if admin is not None:
                await admin.close()

    async def read(self, groups: Mapping[str, Sequence[str]]) -> list[GroupLag]:
        """Lag of each group (id → topics it consumes), partitions ordered by topic, number."""
        async with self._lock:
            return await self._read(groups)

    async def _read(self, groups: Mapping[str, Sequence[str]]) -> list[GroupLag]:
        consumer = self._started()[1]
        layout = await self._partitions({t for topics in groups.values() for t in topics})
        every = [TopicPartition(*tp) for tps in layout.values() for tp in tps]
        starts = _by_tp(await consumer.beginning_offsets(every)) if every else {}
        rows: dict[str, list[tuple[TP, int | None]]] = {}
        for group, topics in groups.items():
            tps = sorted(tp for t in dict.fromkeys(topics) for tp in layout.get(t, ()))
            committed = await self._committed(group, tps)
            rows[group] = [(tp, committed.get(tp)) for tp in tps]
        # The ends after the commits: read before them, an end could be passed by a commit
        # made meanwhile, and a partition show a group past the end of its log. Ends only
        # grow, so read after, each end is at or past every commit read.
        ends = _by_tp(await consumer.end_offsets(every)) if every else {}
        positions = {
            (tp, pos)
            for group_rows in rows.values()
            for tp, c in group_rows
            if ends[tp] > (pos := effective_position(c, starts[tp]))
        }
        stamps = await self._oldest_timestamps(positions)
        now_ms = int(time.time() * 1000)

        def row(tp: TP, committed: int | None) -> PartitionLag:
            stamp = stamps.get((tp, effective_position(committed, starts[tp])))
            fig = partition_lag(
                end_offset=ends[tp],
                log_start=starts[tp],
                committed=committed,
                oldest_timestamp_ms=stamp,
                now_ms=now_ms,
            )
            return PartitionLag(*tp, ends[tp], starts[tp], committed, fig.lag, fig.lag_seconds)

        return [
            GroupLag.of(g, (row(tp, c) for tp, c in group_rows)) for g, group_rows in rows.items()
        ]

    def _started(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            # Not started: Kafka has not answered since this process began (the API keeps
            # trying, ``run_ops_sampler``), or start() was never awaited.
            raise Unavailable("Kafka has not been reachable: the lag cannot be read")
        return self._admin, self._consumer

    async def _partitions(self, topics: set[str]) -> dict[str, list[TP]]:
        if not topics:
            return {}
        described = await self._started()[0].describe_topics(sorted(topics))
        layout: dict[str, list[TP]] = {}
        for entry in described:
            name = str(entry["topic"])
            if entry["error_code"]:
                # Asking a consumer for offsets of a missing topic would stall until timeout.
                log.warning("lag.unknown_topic", topic=name, error_code=entry["error_code"])
                continue
            layout[name] = sorted((name, int(p["partition"])) for p in entry["partitions"])
        return layout

    async def _committed(self, group: str, tps: Sequence[TP]) -> dict[TP, int]:
        if not tps:
            return {}
        admin = self._started()[0]
        offsets = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(*tp) for tp in tps]
        )
        # The broker answers -1 for a partition the group never committed.
        return {
            (str(tp.topic), int(tp.partition)): int(meta.offset)
            for tp, meta in offsets.items()
            if meta.offset >= 0
        }

    async def _oldest_timestamps(self, wanted: set[tuple[TP, int]]) -> dict[tuple[TP, int], int]:
        # Groups sharing a partition at different positions need one fetch round each.
        rounds: list[dict[TP, int]] = []
        for tp, offset in sorted(wanted):
            free = next((r for r in rounds if tp not in r), None)
            if free is None:
                free = {}
                rounds.append(free)
            free[tp] = offset
        found: dict[tuple[TP, int], int] = {}
        for positions in rounds:
            stamps = await self._fetch_first_records(positions)
            found.update(((tp, positions[tp]), ts) for tp, ts in stamps.items())
        return found

    async def _fetch_first_records(self, positions: Mapping[TP, int]) -> dict[TP, int]:
        consumer = self._started()[1]
        tps = {tp: TopicPartition(*tp) for tp in positions}
        consumer.assign(list(tps.values()))
        for tp, offset in positions.items():
            consumer.seek(tps[tp], offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._fetch_bound_s
        stamps: dict[TP, int] = {}
        try:
            while (pending := [tps[tp] for tp in tps if tp not in stamps]) and (
                left := deadline - loop.time()
            ) > 0:
                batches = await consumer.getmany(*pending, timeout_ms=max(1, int(left * 1000)))
                for ktp, records in batches.items():
                    tp = (str(ktp.topic), int(ktp.partition))
                    first = next((r for r in records if r.offset >= positions[tp]), None)
                    if first is not None and tp not in stamps:
                        stamps[tp] = int(first.timestamp)
                        # Its first record is all we need; stop prefetching the rest.
                        consumer.pause(ktp)
        finally:
            # Leave nothing assigned so no background fetch runs between reads.
            consumer.unsubscribe()
        return stamps


def _by_tp(offsets: Mapping[TopicPartition, int]) -> dict[TP, int]:
    return {(str(tp.topic), int(tp.partition)): int(o) for tp, o in offsets.items()}
