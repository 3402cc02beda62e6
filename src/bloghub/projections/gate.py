"""Where each assigned partition stands, and which partitions are held back.

The store's checkpoint is the truth. A partition's records are applied only from the
offset its checkpoint names: until the checkpoint is loaded the partition stays paused
(Kafka's committed offset may run ahead of the store), and a batch that starts above it
is never applied (the partition is sought back). A partition held back - its store
unwell for its events, or an event newer than the code - is paused until its time comes,
then read again from where it stands.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from bloghub.events.base import Recorded
from bloghub.projections.port import TP, RawRecord

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Part:
    """One partition's share of a fetched batch, decoded."""

    tp: TP
    first: int  # offset of its first record
    end: int  # the offset its checkpoint may reach with this batch
    raw: Sequence[RawRecord]
    good: list[Recorded] = field(default_factory=list)
    undecodable: list[tuple[RawRecord, str]] = field(default_factory=list)
    behind: str | None = None  # set when the partition stops at ``end``: newer than the code

    def raw_at(self, offset: int) -> RawRecord:
        return next(r for r in self.raw if r.offset == offset)


class Gate:
    HOLD_FIRST_S = 0.5
    HOLD_MOST_S = 10.0

    def __init__(self, consumer: AIOKafkaConsumer, logger: structlog.BoundLogger) -> None:
        self._consumer = consumer
        self._log = logger
        self._next: dict[TP, int] = {}
        self._held: dict[TP, float] = {}  # monotonic time it may be read again
        self._hold_s: dict[TP, float] = {}
        self._gaps: dict[TP, tuple[int, int]] = {}  # (from, to) last sought back over

    def _ours(self, tps: Iterable[TP]) -> list[TopicPartition]:
        assigned = self._consumer.assignment()
        return [k for k in (TopicPartition(*tp) for tp in tps) if k in assigned]

    def unplaced(self, tps: Iterable[TopicPartition]) -> None:
        """Newly assigned: nothing is read until ``placed`` names where to start."""
        keys = [(tp.topic, tp.partition) for tp in tps]
        self._consumer.pause(*self._ours(keys))
        for tp in keys:
            self._next.pop(tp, None)
            self._held.pop(tp, None)

    def placed(self, tp: TP, offset: int) -> None:
        for key in self._ours([tp]):
            self._consumer.seek(key, offset)
            self._next[tp] = offset
            self._consumer.resume(key)

    def hold(self, tp: TP, offset: int | None = None) -> tuple[int, float] | None:
        """Read ``tp`` again from ``offset`` (where it stands, if not given), after a pause
        that grows while it keeps being held: where it is held, and for how long.

        Nothing for a partition not placed since its last assignment: it stays paused until
        placed, and placement seeks it to the store's checkpoint, which nothing unapplied
        has passed. A batch admitted before a rebalance may fail after it."""
        ours = self._ours([tp])
        if tp not in self._next or not ours:
            return None
        at = self._next[tp] if offset is None else offset
        pause = min(self._hold_s.get(tp, self.HOLD_FIRST_S / 2) * 2, self.HOLD_MOST_S)
        self._hold_s[tp] = pause
        self._consumer.seek(ours[0], at)
        self._consumer.pause(ours[0])
        self._next[tp] = at
        self._held[tp] = time.monotonic() + pause
        return at, pause

    def release_due(self) -> None:
        now = time.monotonic()
        due = [tp for tp, at in self._held.items() if at <= now]
        for tp in due:
            del self._held[tp]
        self._consumer.resume(*self._ours(due))

    def admit(self, parts: Sequence[Part]) -> list[Part]:
        """The parts that continue exactly where their partitions stand."""
        kept = []
        for part in parts:
            at = self._next.get(part.tp)
            if at is None or part.tp in self._held:
                continue  # not placed yet, or held since this batch was fetched
            if part.first > at and self._gaps.get(part.tp) != (at, part.first):
                # Applying it would skip [at, first): read again from where it stands. The
                # same gap read again from there is one the log has (records it no longer
                # keeps), not one the consumer made.
                self._log.warning("projector.gap", partition=part.tp, at=at, first=part.first)
                self._gaps[part.tp] = (at, part.first)
                for key in self._ours([part.tp]):
                    self._consumer.seek(key, at)
                continue
            self._gaps.pop(part.tp, None)
            kept.append(part)
        return kept

    def advanced(self, reached: Mapping[TP, int]) -> None:
        for tp, offset in reached.items():
            if tp in self._next and tp not in self._held:
                self._next[tp] = max(self._next[tp], offset)
                self._hold_s.pop(tp, None)
