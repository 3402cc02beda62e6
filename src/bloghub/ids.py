"""Identifiers made at command time: UUIDv7, time-ordered and safe for JavaScript as strings."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms, then a 12-bit counter that keeps ids made in
    one millisecond by this process in order, then 62 random bits."""
    global _last_ms, _counter
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            now = _last_ms
        else:
            _last_ms = now
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


def new_id_str() -> str:
    return str(new_id())


def time_of(made: str) -> datetime:
    """The millisecond the UUIDv7 ``made`` was made in. Ordering by such ids orders by this
    time too, so a list kept in id order shows its times in order."""
    return datetime.fromtimestamp((uuid.UUID(made).int >> 80) / 1000, UTC)
