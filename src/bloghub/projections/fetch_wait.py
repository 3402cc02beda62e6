"""How long the broker may hold a projector's fetch, by whether the projector is behind.

The consumer keeps one fetch in flight per broker, and leaves out of it every partition
whose records it still holds unread. So a fetch sent while the only partitions without
buffered records are at the log's end asks for nothing the broker has, and is held for
the full wait; the partitions whose buffers the lanes drain meanwhile cannot be fetched
until it returns. A projector idling at the log's end wants a long hold (few empty
fetches); one catching up (a replay, a restart after downtime, a burst) lost up to that
long each time: in `bench counters`' catch-up, no batch was being applied for up to 360
ms of a 2.6 s pass. So the hold is short while any lane reads full batches, and long
once none does.

aiokafka reads the wait from its fetcher when it builds each fetch request and has no
public setter; ``FetchWait`` changes that attribute and nothing else, and leaves the
consumer as configured if a version of aiokafka no longer has it (the projector then
works as before, only its catch-up slower; a test pins the attribute)."""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger(__name__)

ATTRIBUTE = "_fetch_max_wait_ms"


class FetchWait:
    def __init__(self, consumer: Any, *, idle_ms: int, behind_ms: int) -> None:
        self._idle_ms, self._behind_ms = idle_ms, max(1, min(behind_ms, idle_ms))
        self._behind: set[int] = set()
        fetcher = getattr(consumer, "_fetcher", None)
        if fetcher is None or not isinstance(getattr(fetcher, ATTRIBUTE, None), int):
            log.warning("projector.fetch_wait_fixed", wait_ms=idle_ms)
            fetcher = None
        self._fetcher = fetcher
        self._apply()

    @property
    def adjustable(self) -> bool:
        """Whether the consumer's fetch wait is followed (False: fixed as configured)."""
        return self._fetcher is not None

    @property
    def wait_ms(self) -> int:
        """The hold the consumer's next fetch asks for."""
        if self._fetcher is None:
            return self._idle_ms
        return self._behind_ms if self._behind else self._idle_ms

    def lane_read(self, lane: int, *, full: bool) -> None:
        """What lane ``lane`` last read: a full batch (more is likely waiting) or not (a
        partial batch, or nothing within its wait)."""
        if full == (lane in self._behind):
            return
        if full:
            self._behind.add(lane)
        else:
            self._behind.discard(lane)
        self._apply()

    def _apply(self) -> None:
        if self._fetcher is not None:
            setattr(self._fetcher, ATTRIBUTE, self.wait_ms)
