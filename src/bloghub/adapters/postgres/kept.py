"""A few PostgreSQL connections kept open for one-statement reads and claims (``Lookups``).

asyncpg's pool does more than these need, and a command paid for it on every statement:
a checkout under ``wait_for`` (a task of its own), a holder and a proxy object, and a
release that awaits. Its cost was that of a whole ``SELECT 1`` again (about 45 us of CPU
of 100, measured on this machine). Here a checkout is a list ``pop`` when a connection is
idle, a release a list ``append`` or a hand-over to the oldest waiter, neither a task nor
an await; only the rare paths (opening a connection, waiting for one) await.

A connection is given back only as it was lent: the statement ended, by its answer or by
an error of the server's. One whose statement was cancelled or timed out, or whose
connection failed, may be left mid-exchange with the server: it is terminated, and its
place is opened again when next needed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

import asyncpg

Connect = Callable[[], Awaitable[asyncpg.Connection]]
# A connection left idle this long is closed (as asyncpg's pool does after 300 s): what a
# burst opened does not sit unused for good, where a firewall or a load balancer that
# forgets idle flows without a word would leave it to hang the statement that next
# takes it.
MAX_IDLE_S = 300.0


class KeptConnections:
    def __init__(
        self,
        connect: Connect,
        *,
        size: int,
        wait_s: float = 5.0,
        max_idle_s: float = MAX_IDLE_S,
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._connect = connect
        self._size = size
        self._wait_s = wait_s
        self._max_idle_s = max_idle_s
        # Idle connections, each with when it was given back; the last is the newest.
        self._idle: list[tuple[asyncpg.Connection, float]] = []
        self._count = 0  # open, lent or being opened
        # A waiter gets a connection, or None: a place was freed, open one.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        # Each open connection's generation; ``expire`` starts a new one.
        self._born: dict[asyncpg.Connection, int] = {}
        self._generation = 0
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def count(self) -> int:
        """Connections open, lent or being opened (never more than ``size``)."""
        return self._count

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the kept connections are closed")
        if self._idle:
            self._retire_idle(time.monotonic())
        while self._idle:
            conn, _ = self._idle.pop()  # the most recently used: its caches are warm
            if not conn.is_closed():
                return conn
            self._born.pop(conn, None)
            self._count -= 1
        if self._count < self._size:
            self._count += 1
            return await self._open()
        return await self._wait()

    def release(self, conn: asyncpg.Connection) -> None:
        """Give back a connection whose statement ended (an answer, or the server's error)."""
        if self._closed or self._born.get(conn) != self._generation or conn.is_closed():
            self.discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        now = time.monotonic()
        self._idle.append((conn, now))
        self._retire_idle(now)

    def discard(self, conn: asyncpg.Connection) -> None:
        """End a connection that may be left mid-exchange (a statement cancelled, timed out
        or failed on the wire); its place is free for a new one."""
        self._born.pop(conn, None)
        if not conn.is_closed():
            conn.terminate()
        self._count -= 1
        self._free_a_place()

    def expire(self) -> None:
        """The server ended sessions (a restart, a failover): every connection is opened
        anew, the idle ones now, the lent ones when they come back."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            self.discard(conn)

    async def close(self) -> None:
        self._closed = True
        idle = [conn for conn, _ in self._idle]
        self._idle = []
        self._count -= len(idle)
        for conn in idle:
            self._born.pop(conn, None)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the kept connections are closed"))
        await asyncio.gather(*(c.close(timeout=2) for c in idle), return_exceptions=True)

    # --- the rare paths ----------------------------------------------------------------

    async def _open(self) -> asyncpg.Connection:
        """Open a connection in a place already counted; the place is freed if it fails."""
        try:
            conn = await self._connect()
        except BaseException:
            self._count -= 1
            self._free_a_place()
            raise
        if self._closed:  # closed while this one was opening
            self._count -= 1
            conn.terminate()
            raise asyncpg.InterfaceError("the kept connections are closed")
        self._born[conn] = self._generation
        return conn

    async def _wait(self) -> asyncpg.Connection:
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._wait_s):
                conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is not None:  # handed over as the wait ended: not lost
                    self.release(handed)
                else:
                    self._count -= 1  # the place counted for this waiter
                    self._free_a_place()
            else:
                waiter.cancel()
            raise
        if conn is None:
            return await self._open()
        return conn

    def _retire_idle(self, now: float) -> None:
        """Close the idle connections given back longest ago, past ``max_idle_s`` (the
        oldest are first: a checkout takes the newest)."""
        stale = 0
        while stale < len(self._idle) and now - self._idle[stale][1] > self._max_idle_s:
            stale += 1
        if not stale:
            return
        retired, self._idle = self._idle[:stale], self._idle[stale:]
        for conn, _ in retired:
            self._born.pop(conn, None)
            self._count -= 1
            conn.terminate()
        self._free_a_place()

    def _free_a_place(self) -> None:
        """A place below ``size`` is free: the oldest waiter opens a connection in it."""
        while self._waiters and self._count < self._size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(None)
