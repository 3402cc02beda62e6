"""The one place redis-py's errors become ours: a server that is unwell is ``Transient``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.errors import Transient, Unavailable

# Replies redis-py leaves as a plain ResponseError: a script running too long, a server
# that cannot persist and refuses writes, too few replicas for WAIT/min-replicas, a
# replica whose master is down, a dataset still loading.
_UNWELL_PREFIXES = ("BUSY", "MISCONF", "NOREPLICAS", "MASTERDOWN", "LOADING", "READONLY", "OOM")
_UNWELL = (
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,  # also MASTERDOWN
)


def translate(exc: RedisError) -> Exception:
    """Map a redis-py error to the project's hierarchy (or return it unchanged)."""
    if isinstance(exc, BusyLoadingError):
        return Transient(f"redis is loading its dataset: {exc}")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Unavailable("redis is not reachable")
    if isinstance(exc, _UNWELL):
        return Transient(f"redis refuses writes: {type(exc).__name__}: {exc}")
    if isinstance(exc, ResponseError) and _says_unwell(str(exc)):
        return Transient(f"redis refuses writes: {exc}")
    return exc


def _says_unwell(message: str) -> bool:
    # A pipeline names the failed command first: "Command # 1 (...) of pipeline caused
    # error: OOM ..." - look at the error itself.
    reply = message.rsplit("caused error: ", 1)[-1].lstrip("('\"")
    return reply.startswith(_UNWELL_PREFIXES)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc
