"""Positions in the log: the read-your-writes token carried by ``Bloghub-Position``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]
MAX_ENTRIES = 64


class BadPosition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Position:
    """For each (topic, partition) the offset of the last record written there."""

    offsets: Mapping[TopicPartition, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.offsets)

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        for (topic, partition), offset in sorted(self.offsets.items()):
            yield topic, partition, offset

    def merge(self, other: Position) -> Position:
        merged = dict(self.offsets)
        for tp, offset in other.offsets.items():
            merged[tp] = max(offset, merged.get(tp, -1))
        return Position(merged)

    def restricted_to(self, topics: Iterable[str]) -> Position:
        wanted = set(topics)
        return Position({tp: o for tp, o in self.offsets.items() if tp[0] in wanted})

    def encode(self) -> str:
        text = ";".join(f"{t}|{p}|{o}" for t, p, o in self)
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Position:
        if len(token) > 8192:
            raise BadPosition("position token too long")
        try:
            padded = token + "=" * (-len(token) % 4)
            text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
            entries = [e.split("|") for e in text.split(";") if e]
            if len(entries) > MAX_ENTRIES:
                raise BadPosition("position token names too many partitions")
            offsets = {(t, int(p)): int(o) for t, p, o in entries}
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise BadPosition("malformed position token") from exc
        if any(p < 0 or o < 0 for (_, p), o in offsets.items()):
            raise BadPosition("malformed position token")
        return cls(offsets)
