"""Engines by database URL, made on first use: a process reads or writes a migrated
projector's store (``bloghub migrate``) through the engine of the URL the migrations
registry names, without a restart when a migration starts."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

EngineMaker = Callable[[str], AsyncEngine]


class Engines:
    def __init__(self, make: EngineMaker) -> None:
        self._make = make
        self._made: dict[str, AsyncEngine] = {}

    def get(self, url: str) -> AsyncEngine:
        found = self._made.get(url)
        if found is None:
            found = self._made[url] = self._make(url)
        return found

    async def dispose(self) -> None:
        """Every engine made here."""
        made, self._made = list(self._made.values()), {}
        for engine in made:
            await engine.dispose()
