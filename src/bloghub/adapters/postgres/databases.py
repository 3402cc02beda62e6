"""Dropping a whole database (the test suite's and the benchmarks' private ones)."""

from __future__ import annotations

import asyncio

import asyncpg

DROP_TRIES = 20
DROP_PAUSE_S = 0.25


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    """``DROP DATABASE … WITH (FORCE)``, ending the sessions still connected to it.

    An autovacuum worker busy in that database is a session no ordinary role may end, so
    the drop is refused (insufficient privilege) until the worker is done: it is tried
    again, bounded, instead of leaving the database behind."""
    for attempt in range(DROP_TRIES):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == DROP_TRIES - 1:
                raise
            await asyncio.sleep(DROP_PAUSE_S)
