"""The projector port: what the runner needs from any projector, whatever its store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family

TP = tuple[str, int]


class RawRecord(Protocol):
    """The part of a consumed Kafka record the runtime uses."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Projector(Protocol):
    """Applies batches to its store so that the batch and its checkpoint commit together.

    ``apply`` must ignore records below the stored checkpoint (a duplicate delivery is
    detected, not applied) and must be deterministic: the same records give the same state.
    """

    name: str
    families: tuple[Family, ...]
    generation: int

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        """Next offset to read per partition, for those that have one."""
        ...

    def passes_over(self, model: type[Event]) -> bool:
        """Whether no event of ``model`` could change anything here, whatever it holds: the
        runner then reads such records by their type header alone, never decoding them."""
        ...

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        """Apply ``records`` and move the checkpoints to ``next_offsets``, atomically.
        Returns the records that were new (not already below the checkpoint)."""
        ...

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        """Side effects that must follow the commit (cache invalidation, notifications)."""
        ...


def fresh_records(records: Sequence[Recorded], stored: Mapping[TP, int]) -> list[Recorded]:
    """The records at or past the stored checkpoint of their partition: a duplicate delivery
    is detected here and never applied."""
    return [r for r in records if r.offset >= stored.get((r.topic, r.partition), 0)]
