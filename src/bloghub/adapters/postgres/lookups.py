"""One-statement reads on every write's path (and the write-side index's claims, each
safe to repeat), straight on an asyncpg pool.

Through SQLAlchemy such a read cost more CPU in the engine (connection fairies, compiled
parameters, result objects) than in PostgreSQL, and its overflow connections were opened
and closed again under a burst. Here the pool keeps its connections, and asyncpg prepares
each statement once per connection (its statement cache) and sends only Bind/Execute
after that. No transaction: a single read needs none. Keyed reads that many requests make
at once (``one_of``) go out together, one statement for all the keys waiting."""

from __future__ import annotations

from functools import partial

import asyncpg

from bloghub.adapters.postgres.engine import translated
from bloghub.coalesce import Coalesced

# The server closed the connection since the pool last used it (a restart, an idle
# timeout, an administrator's termination): one retry takes a fresh one, as a pre-ping
# would have, without its round trip.
_GONE = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """A lookup changes no session state (no SET, LISTEN, advisory lock or cursor), so
    the pool's default reset on release (a round trip of UNLISTEN, RESET ALL and the rest)
    has nothing to undo. asyncpg still rolls back a transaction left open."""


class Lookups:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # One per statement ``one_of`` is asked with (a handful: each is a constant, or one
        # per read-model generation).
        self._batches: dict[str, Coalesced[str, asyncpg.Record | None]] = {}

    @classmethod
    async def open(
        cls, dsn: str, *, size: int, app: str, statement_timeout_s: float | None = None
    ) -> Lookups:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            timeout=5,
            command_timeout=statement_timeout_s,
            server_settings={"application_name": app},
            reset=_nothing_to_reset,
        )
        return cls(pool)

    async def one_of(self, sql: str, key: str) -> asyncpg.Record | None:
        """The row of ``key`` (``None`` when there is none), asked together with the keys
        other callers are waiting on for the same statement (``Coalesced``): ``sql`` takes
        an array of keys as ``$1`` and returns at most one row per key, the key as text in
        its first column."""
        batch = self._batches.get(sql)
        if batch is None:
            batch = self._batches[sql] = Coalesced(partial(self._keyed, sql))
        return await batch(key)

    async def _keyed(self, sql: str, keys: list[str]) -> list[asyncpg.Record | None]:
        found = {row[0]: row for row in await self.rows(sql, sorted(set(keys)))}
        return [found.get(k) for k in keys]

    async def rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with translated():
            try:
                return await self._fetch(sql, args)
            except _GONE:
                # What ended this session (a restart, a failover) most likely ended the
                # other pooled ones too: they are replaced on their next use, rather than
                # each failing a request (or this retry) first.
                await self._pool.expire_connections()
                return await self._fetch(sql, args)

    async def _fetch(self, sql: str, args: tuple[object, ...]) -> list[asyncpg.Record]:
        async with self._pool.acquire(timeout=5) as conn:
            try:
                return list(await conn.fetch(sql, *args))
            except asyncpg.InternalClientError:
                # The server ended the session while the connection sat in the pool, and
                # its protocol was left mid-exchange: never usable again, so the pool must
                # not hand it out twice.
                conn.terminate()
                raise

    async def close(self) -> None:
        await self._pool.close()
