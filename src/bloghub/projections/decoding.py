"""A fetch decoded into the runner's parts: each record's envelope and event, or why it
cannot be applied (an event newer than the code stops its partition there; what cannot be
decoded at all is dead-lettered when applied).

A record of an event the projector passes over (``passes_over``: the social projector
and a draft, the notifications projector and a login) is left out by its ``type`` and
``version`` headers, which the log writes beside every envelope (``events/codec.py``),
without being decoded: four projectors read the articles topic for events only others
use, and under draft creates decoding each draft was most of what they spent on it. Its
offset still counts (the part's end is the fetch's), so the checkpoint passes it. A record
whose headers name no event of this code at its current version, or none at all, is
decoded as before."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from aiokafka import TopicPartition

from bloghub.errors import CodeBehind
from bloghub.events.base import Event, EventRegistry, Recorded
from bloghub.events.codec import UndecodableEvent, decode
from bloghub.projections.gate import Part
from bloghub.projections.port import RawRecord


class PassedOver:
    """Whether a record is of an event ``passes_over`` says yes to, by its headers alone."""

    def __init__(self, registry: EventRegistry, passes_over: Callable[[type[Event]], bool]):
        self._registry = registry
        self._passes_over = passes_over
        # Per type header of a known event: its model's version as the header writes it,
        # and whether it is passed over. Types this code does not know are not kept.
        self._known: dict[bytes, tuple[bytes, bool]] = {}

    def __call__(self, headers: Sequence[tuple[str, bytes]]) -> bool:
        type_ = version = None
        for key, value in headers:
            if key == "type":
                type_ = value
            elif key == "version":
                version = value
        if type_ is None:
            return False
        known = self._known.get(type_)
        if known is None:
            try:
                model = self._registry.model(type_.decode())
            except (UnicodeDecodeError, LookupError):
                return False
            known = self._known[type_] = (str(model.VERSION).encode(), self._passes_over(model))
        return known[1] and version == known[0]


def decode_fetch(
    registry: EventRegistry,
    batches: Mapping[TopicPartition, Sequence[RawRecord]],
    passed_over: PassedOver | None = None,
) -> list[Part]:
    """One part per partition of the fetch, its good records in offset order (those
    ``passed_over`` says yes to left out)."""
    parts = []
    materialise, good_one = registry.materialise, tuple.__new__
    for tp, records in batches.items():
        topic, partition = tp.topic, tp.partition
        part = Part((topic, partition), records[0].offset, records[-1].offset + 1, records)
        good = part.good.append
        for record in records:
            if passed_over is not None and passed_over(record.headers):
                continue
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
