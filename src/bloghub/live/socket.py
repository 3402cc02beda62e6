"""One live socket: a bounded queue of messages to send, what the client was last heard
from, and how it ends (a close code the client can act on)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bloghub.auth.tokens import Claims


class Close(NamedTuple):
    code: int
    reason: str


UNAUTHORIZED = Close(4401, "unauthorized")
EXPIRED = Close(4401, 'token expired: send a fresh one as {"type": "auth"} before it ends')
SESSION_ENDED = Close(4403, "session ended")
SILENT = Close(4408, "no answer to pings")
TOO_MANY = Close(4429, "too many connections")
TOO_MANY_SIGNING_IN = Close(4429, "too many connections still to sign in from this address")
TOO_BIG = Close(1009, "message too big")
SLOW = Close(1013, "too slow: read what you missed from GET /v1/notifications")
# Past ``queue_max`` messages waiting a socket is behind; it is dropped once it has sent
# nothing for ``slow_after_s`` while behind, or at once past this many times the bound.
HARD_BACKLOG = 16
GOING_AWAY = Close(1001, "server going away")
CLIENT_LEFT = Close(1000, "client left")


@dataclass(frozen=True, slots=True)
class LiveConfig:
    ping_interval_s: float
    presence_ttl_s: float
    auth_timeout_s: float
    connections_per_user: int
    max_message_bytes: int
    queue_max: int
    # Sockets from one address still to sign in, per process: each holds a connection
    # for up to ``auth_timeout_s`` before it has shown a token.
    signing_in_per_address: int = 16


Reauth = Callable[[str], Claims | None]


class LiveSocket:
    def __init__(
        self,
        ws: WebSocket,
        *,
        user_id: str,
        session_id: str,
        process_id: str,
        queue_max: int,
        expires_at: float = math.inf,
        reauth: Reauth | None = None,
        slow_after_s: float = 5.0,
    ) -> None:
        self.ws = ws
        self.user_id = user_id
        self.session_id = session_id
        self.member = f"{process_id}:{secrets.token_hex(6)}"  # its presence entry
        # When the access token it was opened with ends (Unix time): the socket ends then
        # too, unless the client sends a fresh token of the same session first.
        self.expires_at = expires_at
        self._reauth = reauth
        loop = asyncio.get_running_loop()
        self.last_heard = self.last_ping = self.last_sent = loop.time()
        # Bounded by progress, not by one burst: a projector batch may hold a hundred
        # notifications for a user who reads them as fast as they come. A client that
        # does not read is dropped, not buffered for (``offer``).
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queue_max = queue_max
        self._slow_after_s = slow_after_s
        self._behind_since: float | None = None
        self._ended: asyncio.Future[Close] = loop.create_future()

    def offer(self, message: str) -> None:
        waiting = self._queue.qsize()
        if waiting >= self._queue_max:
            now = asyncio.get_running_loop().time()
            if self._behind_since is None:
                self._behind_since = now
            stalled = now - max(self.last_sent, self._behind_since) > self._slow_after_s
            if stalled or waiting >= HARD_BACKLOG * self._queue_max:
                self.end(SLOW)
                return
        self._queue.put_nowait(message)

    def end(self, close: Close) -> None:
        if not self._ended.done():
            self._ended.set_result(close)

    @property
    def ended(self) -> bool:
        return self._ended.done()

    @property
    def reason(self) -> Close | None:
        """Why the socket ends, once it does."""
        return self._ended.result() if self._ended.done() else None

    async def serve(self, max_message_bytes: int) -> Close:
        """Send what is offered and hear the client until either side ends it; then close
        the socket with the reason."""
        tasks: list[asyncio.Future[Any]] = [
            asyncio.create_task(self._send()),
            asyncio.create_task(self._receive(max_message_bytes)),
            asyncio.create_task(self._expire()),
        ]
        try:
            await asyncio.wait([*tasks, self._ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.end(CLIENT_LEFT)  # both tasks end only when the client is gone
        close = self._ended.result()
        await close_socket(self.ws, close)
        return close

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.ws.send_text(await self._queue.get())
                self.last_sent = loop.time()
                if self._queue.qsize() < self._queue_max:
                    self._behind_since = None
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.end(CLIENT_LEFT)

    async def _expire(self) -> None:
        """End the socket when its token does (a fresh one moves ``expires_at`` on)."""
        while True:
            left = self.expires_at - time.time()
            if left <= 0:
                self.end(EXPIRED)
                return
            await asyncio.sleep(min(left, 3600.0))

    def _renewed(self, text: str) -> bool:
        """Whether ``text`` is an ``auth`` message; if it is, the token must be a valid
        access token of this socket's session (it then moves the end on), else the socket
        ends as unauthorized."""
        if self._reauth is None or '"auth"' not in text:
            return False
        token = auth_token(text)
        if token is None:
            return False
        claims = self._reauth(token) if token else None
        if claims is None or (claims.user_id, claims.session_id) != (
            self.user_id,
            self.session_id,
        ):
            self.end(UNAUTHORIZED)
        else:
            self.expires_at = max(self.expires_at, claims.expires_at)
        return True

    async def _receive(self, max_message_bytes: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.end(CLIENT_LEFT)
                return
            text, raw = message.get("text"), message.get("bytes")
            size = len(text.encode()) if text is not None else len(raw or b"")
            if size > max_message_bytes:
                self.end(TOO_BIG)
                return
            # Any message answers a ping; only a fresh token is read.
            self.last_heard = loop.time()
            if text is not None and self._renewed(text) and self.ended:
                return


def auth_token(text: str) -> str | None:
    """The token an ``{"type": "auth", "token": ...}`` message carries ("" if it carries
    none that could be one); None if ``text`` is no such message."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("type") != "auth":
        return None
    token = data.get("token")
    return token if isinstance(token, str) else ""


async def close_socket(ws: WebSocket, close: Close) -> None:
    """Close with ``close`` unless the socket is already closed (either side)."""
    if ws.application_state is WebSocketState.DISCONNECTED:
        return
    if ws.client_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await ws.close(code=close.code, reason=close.reason)
