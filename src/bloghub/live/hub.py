"""The live sockets of one API process: who is connected, fan-out of new notifications
and ended sessions from Redis pub/sub, heartbeats, presence.

Every process hears every notification and keeps those of its own users: one channel
for the deployment rather than one per user, so a process need not re-subscribe as users
come and go, at the cost of each process decoding messages meant for others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from enum import Enum

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.adapters.redis.live_channels import notifications_channel, sessions_ended_channel
from bloghub.adapters.redis.presence import Presence
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.errors import Unavailable
from bloghub.live.socket import GOING_AWAY, SESSION_ENDED, SILENT, LiveConfig, LiveSocket

log = structlog.get_logger(__name__)

PING = orjson.dumps({"type": "ping"}).decode()
READY = orjson.dumps({"type": "ready"}).decode()  # a socket's first message, once joined
REDIS_TURNS = 32
# How many pushed notification ids a process remembers to pass over a second push of one:
# a generation switch pushes for a few seconds from both projectors.
RECENT_PUSHES = 10_000


class Admission(Enum):
    JOINED = "joined"
    TOO_MANY = "too many"
    ENDED = "ended"


class LiveHub:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        presence: Presence,
        sessions: SessionStore,
        config: LiveConfig,
    ) -> None:
        self.redis = redis
        self.presence = presence
        self.sessions = sessions
        self.config = config
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._channels = {
            notifications_channel(prefix).encode(): self._deliver,
            sessions_ended_channel(prefix).encode(): self._sessions_ended,
        }
        self._users: dict[str, set[LiveSocket]] = {}
        self._signing_in: dict[str, int] = {}  # sockets per address still to sign in
        # The ids of the notifications this process pushed last, oldest first: a
        # notification's id is derived from what caused it, so the same one pushed again
        # (both generations' projectors push while a replay's switch hands over) is
        # passed over rather than shown twice.
        self._pushed: dict[str, None] = {}
        self._checks: set[asyncio.Task[None]] = set()  # held until done (asyncio keeps weak refs)
        # Sockets come and go in bursts (a deploy, a network blip: thousands at once); the
        # Redis client's pool refuses calls past its size rather than queueing them, so
        # joins and leaves take turns here.
        self._turns = asyncio.Semaphore(REDIS_TURNS)

    @contextlib.contextmanager
    def signing_in(self, address: str) -> Iterator[bool]:
        """While a socket from ``address`` signs in: whether it may (the address holds
        fewer than the bound of such sockets in this process). Bounded per process, as the
        anonymous read limits are: what one address can hold open before showing a token."""
        held = self._signing_in.get(address, 0)
        if held >= self.config.signing_in_per_address:
            yield False
            return
        self._signing_in[address] = held + 1
        try:
            yield True
        finally:
            left = self._signing_in[address] - 1
            if left:
                self._signing_in[address] = left
            else:
                del self._signing_in[address]

    @property
    def clients(self) -> int:
        return sum(len(s) for s in self._users.values())

    def sockets(self) -> Iterator[LiveSocket]:
        for group in list(self._users.values()):
            yield from list(group)

    async def join(self, sock: LiveSocket) -> Admission:
        """Count the socket in (presence, fan-out) unless its user is at their limit or
        its session has ended. The session is asked once the socket is counted in: one
        ended before is seen here, one ended after reaches it on the sessions channel.
        ``ready`` is offered first, before the socket can be offered a notification (one
        may come while the session is asked); it is sent only if the socket is served."""
        async with self._turns:
            most = self.config.connections_per_user
            if not await self.presence.join(sock.user_id, sock.member, most=most):
                return Admission.TOO_MANY
            sock.offer(READY)
            self._users.setdefault(sock.user_id, set()).add(sock)
            if not await self.sessions.is_live(sock.session_id, sock.user_id):
                return Admission.ENDED
        return Admission.JOINED

    async def leave(self, sock: LiveSocket) -> None:
        group = self._users.get(sock.user_id, set())
        if sock not in group:
            return  # never counted in (refused at its user's limit)
        group.discard(sock)
        if not group:
            self._users.pop(sock.user_id, None)
        try:
            async with self._turns:
                await self.presence.leave(sock.user_id, sock.member)
        except Unavailable as exc:  # the entry lapses by its TTL instead
            log.warning("live.leave_unrecorded", error=repr(exc))

    def _deliver(self, data: bytes) -> None:
        view = orjson.loads(data)
        group = self._users.get(str(view.pop("user_id", "")))
        if not group:
            return
        pushed = str(view.get("id", ""))
        if pushed in self._pushed:
            return
        self._pushed[pushed] = None
        if len(self._pushed) > RECENT_PUSHES:
            del self._pushed[next(iter(self._pushed))]
        message = orjson.dumps({"type": "notification", "notification": view}).decode()
        for sock in list(group):
            sock.offer(message)

    def _sessions_ended(self, data: bytes) -> None:
        user_id = data.decode()
        if user_id in self._users:
            check = asyncio.create_task(self._check_sessions(list(self._users[user_id])))
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)

    async def _check_sessions(self, sockets: list[LiveSocket]) -> None:
        if not sockets:
            return
        try:
            live = await self.sessions.live_among([(s.session_id, s.user_id) for s in sockets])
        except Unavailable as exc:
            log.warning("live.sessions_unchecked", error=repr(exc))
            return
        for sock in sockets:
            if sock.session_id not in live:
                sock.end(SESSION_ENDED)

    def close_all(self) -> None:
        for sock in self.sockets():
            sock.end(GOING_AWAY)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the channels and beat until ``stop``; then end every socket."""
        try:
            await asyncio.gather(self._follow(stop), self._beat(stop))
        finally:
            self.close_all()

    async def _follow(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await self._subscribed(stop)
                delay = 0.2
            except (RedisError, OSError) as exc:
                log.warning("live.unsubscribed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, 5.0)

    async def _subscribed(self, stop: asyncio.Event) -> None:
        async with self.redis.pubsub() as sub:
            await sub.subscribe(*self._channels)
            while not stop.is_set():
                message = await sub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # What ended while unsubscribed was missed: ask again for everyone.
                    await self._check_sessions(list(self.sockets()))
                elif message["type"] == "message":
                    self._handle(message["channel"], message["data"])

    def _handle(self, channel: bytes, data: bytes) -> None:
        try:
            self._channels[channel](data)
        except (ValueError, KeyError, AttributeError) as exc:
            log.warning("live.bad_message", channel=channel.decode(), error=repr(exc))

    async def _beat(self, stop: asyncio.Event) -> None:
        """Often: drop the silent and ping who is due, so pings stay spread as sockets
        joined rather than all sent in one burst. Every half interval (at most a third of
        the presence TTL): refresh presence and this process's dashboard line, and
        re-check sessions (a message missed while unsubscribed)."""
        interval = self.config.ping_interval_s
        refresh_every = min(interval / 2, self.config.presence_ttl_s / 3)
        tick = min(refresh_every, 1.0)
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)
            if stop.is_set():
                return
            self._ping_or_drop(interval)
            if loop.time() - refreshed < refresh_every:
                continue
            refreshed = loop.time()
            try:
                await self._refresh()
            except Unavailable as exc:
                log.warning("live.presence_unrefreshed", error=repr(exc))

    def _ping_or_drop(self, interval: float) -> None:
        now = asyncio.get_running_loop().time()
        for sock in self.sockets():
            if now - sock.last_heard > 2 * interval:
                sock.end(SILENT)
            elif now - sock.last_ping >= interval:
                sock.last_ping = now
                sock.offer(PING)

    async def _refresh(self) -> None:
        live = [s for s in self.sockets() if not s.ended]
        await self.presence.refresh([(s.user_id, s.member) for s in live])
        await self.presence.record_process(
            self.process_id,
            {
                "process": self.process_id,
                "clients": self.clients,
                "users": len(self._users),
                "at": time.time(),
            },
        )
        await self._check_sessions(live)
