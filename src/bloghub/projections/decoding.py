"""A fetch decoded into the runner's parts: each record's envelope and event, or why it
cannot be applied (an event newer than the code stops its partition there; what cannot be
decoded at all is dead-lettered when applied)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition

from bloghub.errors import CodeBehind
from bloghub.events.base import EventRegistry, Recorded
from bloghub.events.codec import UndecodableEvent, decode
from bloghub.projections.gate import Part
from bloghub.projections.port import RawRecord


def decode_fetch(
    registry: EventRegistry, batches: Mapping[TopicPartition, Sequence[RawRecord]]
) -> list[Part]:
    """One part per partition of the fetch, its good records in offset order."""
    parts = []
    materialise, good_one = registry.materialise, tuple.__new__
    for tp, records in batches.items():
        topic, partition = tp.topic, tp.partition
        part = Part((topic, partition), records[0].offset, records[-1].offset + 1, records)
        good = part.good.append
        for record in records:
            # Calls and look-ups kept out of this loop, which runs for every event a
            # projector reads; as in ``decode``, the tuple is made directly, not through
            # the named tuple's __new__.
            try:
                envelope = decode(record.value)
                good(
                    good_one(
                        Recorded,
                        (
                            envelope,
                            materialise(envelope),
                            topic,
                            partition,
                            record.offset,
                            record.timestamp,
                        ),
                    )
                )
            except CodeBehind as exc:
                part.end, part.behind = record.offset, f"{type(exc).__name__}: {exc}"
                break
            except (UndecodableEvent, LookupError, ValueError) as exc:
                part.undecodable.append((record, f"undecodable: {exc}"))
        parts.append(part)
    return parts
