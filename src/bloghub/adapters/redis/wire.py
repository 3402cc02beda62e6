"""Redis commands pipelined over one connection and parsed by hiredis, for the API's round
trips that every authenticated request or write makes (the rate limit's count with the
session read beside it, the own-write positions).

redis-py's asyncio client spends 50-70 µs of CPU per round trip on this machine (its
connection pool, retry wrapper, per-command packing and response callbacks, a timeout
context per read); a bare Starlette route awaiting one ``EVALSHA`` through it answered 2.8x
fewer requests a second than without it. Through ``Wire`` the same round trip costs 7-8 µs
(bench/http.py's I/O floor; the README's "Commands under load"). Everything else keeps
redis-py: its wider API is worth its cost off the hottest paths.

Replies are hiredis's, as redis-py gives them with ``decode_responses=False`` before its
response callbacks: bytes, ints, lists (``HGETALL`` is a flat list) and ``None``; an error
reply is a ``ResponseError`` (``NoScriptError`` for ``NOSCRIPT``) in its place, not raised.
What goes wrong with the connection raises redis-py's ``ConnectionError`` or
``TimeoutError``, so ``adapters/redis/errors.py`` maps them as it maps redis-py's own.

One connection carries every caller's commands, in order; Redis answers in the same order,
so each batch takes the replies of its own commands. A caller that is cancelled leaves its
batch in the queue (the replies still come and are dropped). A batch that waits longer
than ``timeout_s`` closes the connection: every batch still waiting fails, and the next
call connects afresh. That timeout, or a connect that fails, holds the server out of
reach for a moment, for redis-py's connections to it too (adapters/redis/reach.py).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bloghub.adapters.redis.reach import reach_of

Arg = str | bytes | int | float
Command = Sequence[Arg]

# hiredis's stub types the command as a tuple of one argument; it takes any number.
_pack = cast(Callable[[tuple[Arg, ...]], bytes], hiredis.pack_command)


def packed(commands: Sequence[Command]) -> bytes:
    """``commands`` as RESP. A text no command can carry (a lone surrogate, which UTF-8
    cannot encode) raises ``UnicodeEncodeError``; an argument of no type Redis takes,
    ``TypeError``."""
    return b"".join([_pack(tuple(c)) for c in commands])


def _reply_error(message: str) -> ResponseError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS of a ``rediss://`` URL, from the options redis-py reads there (taken out of
    ``options``): ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_check_hostname``."""
    context = ssl.create_default_context(cafile=options.pop("ssl_ca_certs", None))
    reqs = str(options.pop("ssl_cert_reqs", "required")).lower()
    if reqs not in _CERT_REQS:
        raise ValueError(f"redis URL: ssl_cert_reqs={reqs!r} is not none, optional or required")
    verify = _CERT_REQS[reqs]
    context.check_hostname = bool(options.pop("ssl_check_hostname", verify != ssl.CERT_NONE))
    context.verify_mode = verify
    return context


# TCP keepalive on an idle connection: probes after this long idle, this far apart, and
# this many unanswered before the kernel ends it. A firewall or NAT between the API and
# Redis that forgets idle flows (some after 350 s) would otherwise leave a connection that
# looks open, and the next request's commands would wait out ``timeout_s`` for replies
# that never come; probed, the flow stays known, and a peer that is gone ends the
# connection while idle (``connection_lost``), so the next call connects afresh.
KEEPALIVE_IDLE_S = 60
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_PROBES = 3


def keep_alive(sock: socket.socket | None) -> None:
    """Turn on TCP keepalive with the timings above (Linux; elsewhere the system's)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket has no peer to lose silently
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


@dataclass(slots=True)
class _Batch:
    expected: int
    answer: asyncio.Future[list[object]]
    replies: list[object] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=_reply_error)
        self._waiting: deque[_Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio's classes).
        self._transport = cast(asyncio.Transport, transport)
        keep_alive(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                batch = waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.expected:
                    waiting.popleft()
                    if not batch.answer.done():  # a cancelled caller's replies are dropped
                        batch.answer.set_result(batch.replies)
        except (hiredis.ProtocolError, IndexError) as exc:
            # Out of step with the server (a reply nobody asked for): nothing after it can
            # be matched to its command.
            self.close(RedisConnectionError(f"redis: unreadable reply stream: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(
            RedisConnectionError(f"redis: connection lost: {exc!r}" if exc else "redis: closed")
        )

    def send(self, payload: bytes, expected: int, answer: asyncio.Future[list[object]]) -> None:
        if self.lost is not None or self._transport is None:
            raise self.lost or RedisConnectionError("redis: not connected")
        self._waiting.append(_Batch(expected, answer))
        self._transport.write(payload)

    def close(self, why: Exception) -> None:
        self._fail(why)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, why: Exception) -> None:
        if self.lost is None:
            self.lost = why
        while self._waiting:
            batch = self._waiting.popleft()
            if not batch.answer.done():
                batch.answer.set_exception(why)


class Wire:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 2.0,
        connect_timeout_s: float = 2.0,
    ) -> None:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._path: str | None = options.get("path")
        self._db = int(options.get("db", 0))
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        kind = options.pop("connection_class", None)
        self._tls = _tls_context(options) if kind is SSLConnection else None
        self._unix = kind is UnixDomainSocketConnection
        # As with redis-py's ``from_url``, the URL's own timeouts win.
        self._timeout_s = float(options.pop("socket_timeout", timeout_s))
        self._connect_timeout_s = float(options.pop("socket_connect_timeout", connect_timeout_s))
        unknown = set(options) - {"host", "port", "path", "db", "username", "password"}
        if unknown:
            # Better refused at start-up than a connection made unlike redis-py's.
            raise ValueError(f"redis URL options the wire does not support: {sorted(unknown)}")
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        # Shared with redis-py's connections to the same server (adapters/redis/reach.py).
        self._reach = reach_of(
            self._path if self._unix and self._path else f"{self._host}:{self._port}"
        )

    async def execute(self, commands: Sequence[Command]) -> list[object]:
        """The replies to ``commands``, sent in one write and answered in one batch."""
        if not commands:
            return []
        return await self.execute_packed(packed(commands), len(commands))

    async def execute_packed(self, payload: bytes, count: int) -> list[object]:
        """The replies to ``count`` commands already ``packed`` into ``payload`` (a caller
        batching others' commands packs each's first: one that cannot be sent fails alone,
        not the batch)."""
        reach = self._reach
        reach.check()
        connection = await self._connected()
        answer: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        connection.send(payload, count, answer)
        since = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                replies = await answer
        except TimeoutError:
            reach.timed_out(since)
            connection.close(RedisTimeoutError("redis: no reply in time"))
            raise RedisTimeoutError(f"redis: no reply within {self._timeout_s} s") from None
        reach.answered()
        return replies

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close(RedisConnectionError("redis: closed by this process"))
            self._connection = None

    async def _connected(self) -> _Connection:
        current = self._connection
        if current is not None and current.lost is None:
            return current
        async with self._connecting:
            current = self._connection
            if current is not None and current.lost is None:
                return current
            self._reach.check()
            try:
                self._connection = await self._connect()
            except (RedisConnectionError, RedisTimeoutError):
                self._reach.failed()
                raise
            return self._connection

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if self._unix:
                    assert self._path is not None
                    _, connection = await loop.create_unix_connection(_Connection, self._path)
                else:
                    _, connection = await loop.create_connection(
                        _Connection, self._host, self._port, ssl=self._tls
                    )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"redis: cannot connect: {exc!r}") from exc
        hello: list[Command] = []
        if self._password is not None:
            auth: list[Arg] = ["AUTH"]
            if self._username:
                auth.append(self._username)
            hello.append([*auth, self._password])
        if self._db:
            hello.append(["SELECT", self._db])
        if hello:
            answer: asyncio.Future[list[object]] = loop.create_future()
            connection.send(b"".join(_pack(tuple(c)) for c in hello), len(hello), answer)
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    replies = await answer
            except TimeoutError:
                connection.close(RedisTimeoutError("redis: no reply to AUTH/SELECT in time"))
                raise RedisTimeoutError("redis: no reply to AUTH/SELECT in time") from None
            refused = next((r for r in replies if isinstance(r, ResponseError)), None)
            if refused is not None:
                connection.close(RedisConnectionError(f"redis: {refused}"))
                raise RedisConnectionError(f"redis refused the connection: {refused}")
        return connection
