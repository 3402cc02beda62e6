"""The gate never lets a batch apply past where its partition stands in the store."""

from __future__ import annotations

from typing import Any, cast

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from bloghub.projections.gate import Gate, Part

TP0 = ("t", 0)
KTP0 = TopicPartition(*TP0)


class Consumer:
    """The part of a consumer the gate drives: where it reads from, and what is paused;
    assigned ``assigned`` (by default this module's one partition)."""

    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned) or {KTP0}
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)


def gate() -> tuple[Gate, Consumer]:
    consumer = Consumer()
    return Gate(cast(AIOKafkaConsumer, consumer), structlog.get_logger()), consumer


def part(first: int, last: int) -> Part:
    raw: list[Any] = []
    return Part(TP0, first, last + 1, raw)


def test_nothing_is_read_before_the_checkpoint_is_known() -> None:
    g, consumer = gate()
    g.unplaced([KTP0])
    assert KTP0 in consumer.paused
    assert g.admit([part(500, 599)]) == []
    g.placed(TP0, 100)
    assert consumer.positions[KTP0] == 100
    assert KTP0 not in consumer.paused


def test_a_batch_above_the_checkpoint_is_sought_back_not_applied() -> None:
    g, consumer = gate()
    g.unplaced([KTP0])
    g.placed(TP0, 100)
    assert g.admit([part(500, 599)]) == []
    assert consumer.positions[KTP0] == 100
    assert len(g.admit([part(100, 199)])) == 1
    g.advanced({TP0: 200})
    assert g.admit([part(300, 399)]) == []
    assert consumer.positions[KTP0] == 200


def test_a_gap_the_log_itself_has_is_crossed_once_read_again() -> None:
    g, _ = gate()
    g.unplaced([KTP0])
    g.placed(TP0, 100)
    assert g.admit([part(150, 199)]) == []
    # Read again from 100, the log starts at 150 (it no longer keeps what came before).
    assert len(g.admit([part(150, 199)])) == 1


def test_a_held_partition_is_read_again_from_where_it_stands() -> None:
    g, consumer = gate()
    g.unplaced([KTP0])
    g.placed(TP0, 100)
    g.hold(TP0, 120)
    assert KTP0 in consumer.paused
    assert consumer.positions[KTP0] == 120
    assert g.admit([part(120, 130)]) == []
