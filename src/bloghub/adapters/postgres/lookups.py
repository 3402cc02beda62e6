"""One-statement reads on every write's path, straight on an asyncpg pool.

Through SQLAlchemy such a read cost more CPU in the engine (connection fairies, compiled
parameters, result objects) than in PostgreSQL, and its overflow connections were opened
and closed again under a burst. Here the pool keeps its connections, and asyncpg prepares
each statement once per connection (its statement cache) and sends only Bind/Execute
after that. No transaction: a single read needs none."""

from __future__ import annotations

import asyncpg

from bloghub.adapters.postgres.engine import translated

# The server closed the connection since the pool last used it (a restart, an idle
# timeout): one retry takes a fresh one, as a pre-ping would have, without its round trip.
_GONE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """A lookup changes no session state (no SET, LISTEN, advisory lock or cursor), so
    the pool's default reset on release (a round trip of UNLISTEN, RESET ALL and the rest)
    has nothing to undo. asyncpg still rolls back a transaction left open."""


class Lookups:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, size: int, app: str) -> Lookups:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            timeout=5,
            server_settings={"application_name": app},
            reset=_nothing_to_reset,
        )
        return cls(pool)

    async def value(self, sql: str, *args: object) -> object:
        """The first column of the first row (``None`` when there is none)."""
        async with translated():
            try:
                return await self._fetchval(sql, args)
            except _GONE:
                return await self._fetchval(sql, args)

    async def _fetchval(self, sql: str, args: tuple[object, ...]) -> object:
        async with self._pool.acquire(timeout=5) as conn:
            return await conn.fetchval(sql, *args)

    async def row(self, sql: str, *args: object) -> asyncpg.Record | None:
        """The first row (``None`` when there is none)."""
        async with translated():
            try:
                return await self._fetchrow(sql, args)
            except _GONE:
                return await self._fetchrow(sql, args)

    async def _fetchrow(self, sql: str, args: tuple[object, ...]) -> asyncpg.Record | None:
        async with self._pool.acquire(timeout=5) as conn:
            return await conn.fetchrow(sql, *args)

    async def close(self) -> None:
        await self._pool.close()
