"""Whether a Redis server is worth asking: after a call to it timed out with no reply
from it to anyone meanwhile, or could not connect, every call to that server from this
process fails at once for ``HOLD_S`` instead of waiting out its own timeout.

A hung server (a stalled host, a server stopped mid-fork) accepts connections and answers
nothing. Every call then waited its full timeout, one after another within a request: a
cold article read that tried its caches in turn (the body, the author, the comment
counts, the like counts) took 10 s, and every request of every client queued behind.
With the hold the first call pays one timeout, and those after it, in this request and
in every other, learn at once that Redis is out of reach and take the way they already
take then (the read model, a fail-open limit, a 503). Once ``HOLD_S`` has passed, calls
go to the server again: the first of them that times out starts the hold again, so a
server that stays hung costs a timeout per hold, not one per call. A call that times
out while the server answered others was only slow (a long script): it fails alone.

Both clients bloghub uses are held back by the same record of a server (``reach_of``):
redis-py's, through the connection classes ``guarded`` makes, and the hot paths' wire
(adapters/redis/wire.py). The hold is a ``ConnectionError``: the one a call gets when
the server is down, which every caller already handles.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.logs import SELDOM

log = structlog.get_logger(__name__)

HOLD_S = 1.0


class _Said:
    """Whether a hold is logged: not by a command that asks once and answers, whose own
    one line says Redis cannot be reached (cli.py)."""

    holds = True


def quiet_holds() -> None:
    _Said.holds = False


class Reach:
    """One server's record in this process."""

    def __init__(self, name: str, hold_s: float = HOLD_S) -> None:
        self.name = name
        self.hold_s = hold_s
        self._held_until = 0.0
        self._answered_at = 0.0

    @property
    def held(self) -> bool:
        return time.monotonic() < self._held_until

    def check(self) -> None:
        """Raise, without a round trip, while the server is held out of reach."""
        if time.monotonic() < self._held_until:
            raise RedisConnectionError(
                f"redis at {self.name} is out of reach: a call to it failed under "
                f"{self.hold_s:g} s ago"
            )

    def answered(self) -> None:
        """A reply came from the server."""
        self._answered_at = time.monotonic()

    def timed_out(self, waited_since: float) -> None:
        """A reply waited for since ``waited_since`` (``time.monotonic()``) did not come in
        time: the server is held only if it answered no one meanwhile. One that answered
        others is up, and this call was slow (a long script): that is this call's
        failure, not a reason to fail everyone's."""
        if self._answered_at < waited_since:
            self.failed()

    def failed(self) -> None:
        """A call could not connect, or the server answered no one while a reply was
        waited for: hold the server for ``hold_s``."""
        said = _Said.holds and not self.held
        if said and (left_out := SELDOM.due(f"redis.held:{self.name}")) is not None:
            log.warning(
                "redis.held_out_of_reach", server=self.name, hold_s=self.hold_s, left_out=left_out
            )
        self._held_until = time.monotonic() + self.hold_s


_REACHES: dict[str, Reach] = {}


def reach_of(name: str) -> Reach:
    """The record of the server ``name`` (``host:port``, or a socket's path)."""
    found = _REACHES.get(name)
    if found is None:
        found = _REACHES[name] = Reach(name)
    return found


class _Guarded:
    """Mixed in before a redis-py connection class: each connect, command and reply goes
    through its server's record. A connect that fails or a reply that is late holds the
    server; a connection found broken does not (a restarted server: the next call
    connects again, and holds the server only if that fails)."""

    host: str
    port: int

    _held_by: Reach | None = None

    def _reach(self) -> Reach:
        if self._held_by is None:
            path = getattr(self, "path", None)
            self._held_by = reach_of(path if path else f"{self.host}:{self.port}")
        return self._held_by

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        reach = self._reach()
        reach.check()
        try:
            await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError):
            reach.failed()
            raise

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        reach = self._reach()
        reach.check()
        since = time.monotonic()
        try:
            await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except RedisTimeoutError:
            reach.timed_out(since)
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reach, since = self._reach(), time.monotonic()
        try:
            response = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except RedisTimeoutError:
            reach.timed_out(since)
            raise
        except ResponseError:
            reach.answered()  # an error reply is a reply
            raise
        # A read given its own timeout (a subscriber's wait for a message) returns None
        # when nothing came: no sign of the server. Any other None is a nil reply.
        if response is not None or kwargs.get("timeout") is None:
            reach.answered()
        return response


_GUARDED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def guarded(kind: type[AbstractConnection]) -> type[AbstractConnection]:
    """``kind`` (a redis-py connection class: TCP, TLS or a Unix socket) going through
    its server's record."""
    found = _GUARDED.get(kind)
    if found is None:
        found = _GUARDED[kind] = type(f"Guarded{kind.__name__}", (_Guarded, kind), {})
    return found
