"""Engine construction and the one place asyncpg/SQLAlchemy errors become ours."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bloghub.errors import Conflict, SchemaBehind, StoreRejected, Transient, Unavailable


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    app: str = "bloghub",
    pre_ping: bool = True,
    server_settings: dict[str, str] | None = None,
    statement_timeout_s: float | None = None,
    autocommit: bool = False,
) -> AsyncEngine:
    """``statement_timeout_s``: how long one statement may take before the driver gives up
    on it (``TimeoutError``, translated as the database out of reach); None: as long as it
    takes (a projector's batch, a migration's copy). ``autocommit``: no transaction
    around a statement (for ``read_all``'s single statements)."""
    connect_args: dict[str, object] = {
        "server_settings": {"application_name": app, **(server_settings or {})},
        "timeout": 5,
    }
    if statement_timeout_s is not None:
        connect_args["command_timeout"] = statement_timeout_s
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_timeout=5,
        # Bound values are emails, password hashes, decrypted personal fields: an error's
        # text (logged, dead-lettered) must never quote them.
        hide_parameters=True,
        connect_args=connect_args,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )


def make_read_engine(
    url: str, *, pool_size: int, app: str, statement_timeout_s: float | None
) -> AsyncEngine:
    """The engine of an API process's reads: one statement per connection taken, in
    autocommit and unpinged. With a transaction and a pre-ping, as the asyncpg dialect does
    them, each read was six round trips (BEGIN, the ping, ROLLBACK; BEGIN, the statement,
    ROLLBACK); this way it is one. A connection the server closed meanwhile costs
    ``read_all`` one more try, as the ping would have."""
    return make_engine(
        url,
        pool_size=pool_size,
        app=app,
        pre_ping=False,
        statement_timeout_s=statement_timeout_s,
        autocommit=True,
    )


async def read_all(
    engine: AsyncEngine, stmt: Executable, schemas: Mapping[str | None, str] | None = None
) -> list[Any]:
    """The rows of one statement, run with ``schemas`` translated (a read model's
    generation). A connection found closed (the server restarted or ended it since it was
    pooled) is discarded with the rest of the pool, and the statement tried once more on a
    fresh one."""
    async with translated():
        try:
            return await _rows(engine, stmt, schemas)
        except sa_exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return await _rows(engine, stmt, schemas)


async def _rows(
    engine: AsyncEngine, stmt: Executable, schemas: Mapping[str | None, str] | None
) -> list[Any]:
    async with engine.connect() as raw:
        conn = (
            raw
            if schemas is None
            else await raw.execution_options(schema_translate_map=dict(schemas))
        )
        return list(await conn.execute(stmt))


# A server that is unwell, not a statement that is wrong: serialization failure, deadlock,
# read-only transaction (a standby after failover, or default_transaction_read_only),
# lock not available, insufficient privilege (a deployment's grants), a database that
# takes no connections or does not exist, and whole classes: 08 connection exception,
# 28 invalid authorization, 53 insufficient resources (disk full, out of memory, too many
# connections), 57 operator intervention (statement timeout, admin or crash shutdown,
# cannot connect now), 58 system error (I/O), XX internal error.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "25006", "55P03", "42501", "55000", "3D000"}
_TRANSIENT_CLASSES = {"08", "28", "53", "57", "58", "XX"}
# undefined table, undefined column, unknown schema
_SCHEMA_SQLSTATES = {"42P01", "42703", "3F000"}
# 22 data exception, 23 integrity constraint violation: what was written is refused.
_REJECTED_CLASSES = {"22", "23"}


# What the driver raises of its own, not the server: a broken connection, or this code's
# misuse of the driver (more than 32767 arguments bound, a value of the wrong type), which
# fails the same way however often it is tried.
_DRIVER_ERRORS = (asyncpg.InterfaceError, asyncpg.InternalClientError)
# The driver's own word that a connection cannot go on: closed under it (the server ended
# the session, as after a failover; the pool closing as the process stops), or its protocol
# left mid-exchange by that. The next try takes another connection. Whole messages, so a
# value quoted in another error's text cannot pass for one. (A session that ends during a
# statement is ``ConnectionDoesNotExistError``, SQLSTATE 08003: transient above.)
_CLOSED = {
    "connection is closed",
    "cannot perform operation: connection is closed",
    "pool is closed",
    "pool is closing",
}


def is_transient(sqlstate: str) -> bool:
    return sqlstate in _TRANSIENT_SQLSTATES or sqlstate[:2] in _TRANSIENT_CLASSES


def _broken_connection(cause: BaseException) -> bool:
    """Whether the driver's error says the connection is gone (not that it was misused)."""
    if isinstance(cause, asyncpg.InternalClientError):
        return True
    return isinstance(cause, asyncpg.InterfaceError) and str(cause) in _CLOSED


def translate(exc: BaseException) -> BaseException:
    """Map a driver error to the project's hierarchy (or return it unchanged)."""
    orig = getattr(exc, "orig", None)
    # SQLAlchemy wraps the driver's error; a bare asyncpg error (adapters/postgres/lookups.py)
    # is its own cause.
    cause = getattr(orig, "__cause__", None) or orig or exc
    if isinstance(cause, asyncpg.UniqueViolationError):
        return Conflict("already exists")
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str) and is_transient(sqlstate):
        return Transient(f"{sqlstate}: {cause}")
    if sqlstate in _SCHEMA_SQLSTATES:
        return SchemaBehind(f"the database schema is behind this code ({cause}); run migrations")
    if isinstance(sqlstate, str) and sqlstate[:2] in _REJECTED_CLASSES:
        return StoreRejected(f"{sqlstate}: {cause}")
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return Transient(str(exc))
    if isinstance(exc, OSError | sa_exc.TimeoutError) or isinstance(
        cause, OSError | asyncpg.CannotConnectNowError
    ):
        return Unavailable("the database is not reachable")
    if _broken_connection(cause):
        return Transient(f"the database connection broke: {cause}")
    return exc


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except (sa_exc.SQLAlchemyError, asyncpg.PostgresError, OSError, *_DRIVER_ERRORS) as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc
