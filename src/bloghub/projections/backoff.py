"""Waiting: with back-off, cut short by a stop; or until any of some events is set."""

from __future__ import annotations

import asyncio
import random


class Stopping(Exception):
    """Raised instead of waiting on once the runner is told to stop: what waits is left
    unapplied, its checkpoint where it was."""


class Backoff:
    def __init__(self, first_s: float = 0.05, most_s: float = 2.0) -> None:
        self._first = first_s
        self._most = most_s
        self._next = first_s

    def reset(self) -> None:
        self._next = self._first

    def step(self) -> float:
        """The next wait (with jitter, so instances do not retry in step), then doubles."""
        delay = self._next * (1 + random.random()) / 2 + self._next / 2
        self._next = min(self._next * 2, self._most)
        return delay

    async def sleep(self, stop: asyncio.Event) -> None:
        if stop.is_set():
            raise Stopping
        try:
            await asyncio.wait_for(stop.wait(), timeout=self.step())
        except TimeoutError:
            return
        raise Stopping


async def wait_any(seconds: float, *events: asyncio.Event) -> None:
    """Return once any of ``events`` is set, or after ``seconds``."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
