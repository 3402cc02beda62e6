"""A batch admitted before a rebalance may fail after it, while its partition waits to be
placed again: the runner goes on (no projector of the process stops), nothing of the
partition is read before placement, and placement reads it again from the store's
checkpoint, so the record that failed is not skipped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from bloghub.errors import StoreRejected
from bloghub.events.base import Event, Recorded, registry
from bloghub.events.topics import Family
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.gate import Gate, Part
from bloghub.projections.offset_commits import OffsetCommitter
from bloghub.projections.port import TP, RawRecord
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from tests.support import recorded
from tests.unit.test_gate import Consumer

TP0 = ("t.users", 0)
KTP0 = TopicPartition(*TP0)
CHECKPOINT = 100  # where the store says the partition stands; the failing record's offset


class Store:
    """A projector whose store refuses one event's data and holds its checkpoint."""

    name = "signups"
    families: tuple[Family, ...] = (Family.USERS,)
    generation = 1

    def __init__(self) -> None:
        self.applied: list[int] = []

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        return dict.fromkeys(partitions, CHECKPOINT)

    def passes_over(self, model: type[Event]) -> bool:
        return False

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        if any(r.offset == CHECKPOINT for r in records):
            raise StoreRejected("this event's data is refused")
        self.applied += [r.offset for r in records]
        return records

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        return None


@dataclass
class Raw:
    topic: str
    partition: int
    offset: int
    timestamp: int = 0
    value: bytes | None = b"\xff not an event"
    headers: Sequence[tuple[str, bytes]] = ()


class QueueAcrossARebalance:
    """A dead-letter queue that fails its send, the group rebalancing meanwhile (the
    partition is assigned to this runner anew)."""

    def __init__(self) -> None:
        self.runner: ProjectorRunner | None = None
        self.tries = 0

    async def send(self, projector: str, record: RawRecord, error: str) -> None:
        self.tries += 1
        assert self.runner is not None
        self.runner.assigned({KTP0})
        raise KafkaTimeoutError("the dead-letter queue did not confirm in time")


def undecodable() -> Part:
    raw = Raw(*TP0, CHECKPOINT)
    return Part(TP0, CHECKPOINT, CHECKPOINT + 1, [raw], undecodable=[(raw, "not JSON")])


def at_fault() -> Part:
    event = UserRegistered(user_id=new_id_str(), email="a@example.com", password_hash="h")
    good = recorded(event, topic=TP0[0], partition=TP0[1], offset=CHECKPOINT)
    return Part(TP0, CHECKPOINT, CHECKPOINT + 1, [Raw(*TP0, CHECKPOINT)], good=[good])


async def until_resumed(consumer: Consumer) -> None:
    for _ in range(100):
        if KTP0 not in consumer.paused:
            return
        await asyncio.sleep(0)
    raise AssertionError("the partition was never placed again")


@pytest.mark.parametrize("part", [undecodable, at_fault], ids=["undecodable", "at_fault"])
async def test_a_batch_failing_after_a_rebalance_stops_nothing_and_skips_nothing(
    part: Callable[[], Part],
) -> None:
    consumer, queue, store = Consumer(KTP0), QueueAcrossARebalance(), Store()
    runner = ProjectorRunner(
        store,
        config=RunnerConfig(bootstrap="unused", prefix="t", apply_retries=1),
        registry=registry,
        dead_letters=cast(DeadLetters, queue),
    )
    queue.runner = runner
    kafka = cast(AIOKafkaConsumer, consumer)
    gate = Gate(kafka, structlog.get_logger())
    runner._consumer, runner._gate = kafka, gate
    gate.unplaced([KTP0])
    gate.placed(TP0, CHECKPOINT)

    await runner.apply_batch([part()], OffsetCommitter(kafka, structlog.get_logger()))

    assert queue.tries == 1
    assert KTP0 in consumer.paused, "nothing is read before the partition is placed again"
    await until_resumed(consumer)
    assert consumer.positions[KTP0] == CHECKPOINT, "read again from the store's checkpoint"
    assert store.applied == []
    assert [p.first for p in gate.admit([part()])] == [CHECKPOINT], "the record is not skipped"
