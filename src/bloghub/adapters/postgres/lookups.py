"""One-statement reads on every write's path (and the write-side index's claims, each
safe to repeat), straight on asyncpg connections kept open (``KeptConnections``).

Through SQLAlchemy such a read cost more CPU in the engine (connection fairies, compiled
parameters, result objects) than in PostgreSQL, and its overflow connections were opened
and closed again under a burst. Here the connections are kept, and asyncpg prepares
each statement once per connection (its statement cache) and sends only Bind/Execute
after that. No transaction: a single read needs none. Keyed reads that many requests make
at once (``one_of``) go out together, one statement for all the keys waiting."""

from __future__ import annotations

from functools import partial

import asyncpg

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.kept import KeptConnections
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


class Lookups:
    def __init__(self, kept: KeptConnections) -> None:
        self._kept = kept
        # One per statement ``one_of`` is asked with (a handful: each is a constant, or one
        # per read-model generation).
        self._batches: dict[str, Coalesced[str, asyncpg.Record | None]] = {}

    @classmethod
    async def open(
        cls, dsn: str, *, size: int, app: str, statement_timeout_s: float | None = None
    ) -> Lookups:
        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                dsn,
                timeout=5,
                command_timeout=statement_timeout_s,
                server_settings={"application_name": app},
            )

        kept = KeptConnections(connect, size=size)
        # One opened now: a database that cannot be reached is said at start, not later.
        kept.release(await kept.acquire())
        return cls(kept)

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
                self._kept.expire()
                return await self._fetch(sql, args)

    async def _fetch(self, sql: str, args: tuple[object, ...]) -> list[asyncpg.Record]:
        conn = await self._kept.acquire()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        except asyncpg.PostgresError:
            self._kept.release(conn)  # the server answered with an error: the exchange ended
            raise
        except BaseException:
            # Cancelled, timed out, or the connection failed (the server ended the session
            # while it sat idle, and its protocol was left mid-exchange): it may never be
            # usable again, so it is not handed out twice.
            self._kept.discard(conn)
            raise
        self._kept.release(conn)
        return rows

    async def close(self) -> None:
        await self._kept.close()
