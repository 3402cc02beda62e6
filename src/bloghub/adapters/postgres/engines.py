"""Engines by database URL, made on first use: a process reads or writes a migrated
projector's store (``bloghub migrate``) through the engine of the URL the migrations
registry names, without a restart when a migration starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

EngineMaker = Callable[[str], AsyncEngine]

# An engine of a URL no migration names any more (aborted, or finished and forgotten) is
# disposed of this long after it was first seen so: a request that took it with the
# placements read before is done with it by then. Its connections close, so the database
# can be dropped without a restart.
RETIRE_AFTER_S = 10.0
CLOSE_WITHIN_S = 10.0

log = structlog.get_logger(__name__)


class Engines:
    def __init__(self, make: EngineMaker) -> None:
        self._make = make
        self._made: dict[str, AsyncEngine] = {}
        self._unnamed_since: dict[str, float] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, url: str) -> AsyncEngine:
        found = self._made.get(url)
        if found is None:
            found = self._made[url] = self._make(url)
        return found

    async def keep(self, named: Collection[str], *, after_s: float | None = None) -> None:
        """Dispose of the engines of URLs not in ``named`` (the migrations' targets now)
        once they have gone unnamed for ``after_s`` (``RETIRE_AFTER_S``); called with each
        fresh read of the migrations."""
        after_s = RETIRE_AFTER_S if after_s is None else after_s
        now = time.monotonic()
        for url in list(self._made):
            if url in named:
                self._unnamed_since.pop(url, None)
                continue
            if now - self._unnamed_since.setdefault(url, now) < after_s:
                continue
            engine = self._made.pop(url)
            del self._unnamed_since[url]
            # Closed beside the caller (a request reloading the placements, under its
            # lock), not in its way: a target that no longer answers could hold it for a
            # statement timeout per connection.
            closing = asyncio.create_task(self._closed(engine), name=f"retire-engine:{url}")
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _closed(self, engine: AsyncEngine) -> None:
        try:
            async with asyncio.timeout(CLOSE_WITHIN_S):
                await engine.dispose()
        except Exception as exc:
            log.warning("engines.retire_failed", error=repr(exc))

    async def dispose(self) -> None:
        """Every engine made here, and those being retired."""
        made, self._made = list(self._made.values()), {}
        for engine in made:
            await engine.dispose()
        if self._closing:
            await asyncio.wait(list(self._closing))
