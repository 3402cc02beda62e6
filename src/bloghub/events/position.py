"""Positions in the log, and the signed read-your-writes token carried by
``Bloghub-Position`` and sent back in ``Bloghub-After``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]
MAX_ENTRIES = 64
MAX_TOKEN_CHARS = 8192
_KEY_LABEL = b"bloghub position token v1"
_MAC_BYTES = 16


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
        if len(token) > MAX_TOKEN_CHARS:
            raise BadPosition("position token too long")
        try:
            padded = token + "=" * (-len(token) % 4)
            text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
            entries = [e.split("|") for e in text.split(";") if e]
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BadPosition("malformed position token") from exc
        if len(entries) > MAX_ENTRIES:
            raise BadPosition("position token names too many partitions")
        try:
            offsets = {(t, int(p)): int(o) for t, p, o in entries}
        except ValueError as exc:
            raise BadPosition("malformed position token") from exc
        if any(p < 0 or o < 0 for (_, p), o in offsets.items()):
            raise BadPosition("malformed position token")
        return cls(offsets)


class PositionSigner:
    """Seals the positions handed to clients with an HMAC, so a position a client sends
    back is one this deployment issued: a made-up one cannot make a read wait for a point
    of the log that no write has reached."""

    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the setting, so the MAC serves nothing else.
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def seal(self, position: Position) -> str:
        payload = position.encode()
        return f"{payload}.{self._mac(payload)}"

    def open(self, token: str) -> Position:
        """The position a sealed token names; ``BadPosition`` unless this key sealed it."""
        if len(token) > MAX_TOKEN_CHARS:
            raise BadPosition("position token too long")
        payload, dot, mac = token.rpartition(".")
        given = mac.encode("utf-8", "replace")
        if not dot or not hmac.compare_digest(given, self._mac(payload).encode()):
            raise BadPosition("not a position token this service issued")
        return Position.decode(payload)

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode("utf-8", "replace"), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:_MAC_BYTES]).decode().rstrip("=")
