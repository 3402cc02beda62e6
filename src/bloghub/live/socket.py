"""One live socket: a bounded queue of messages to send, what the client was last heard
from, and how it ends (a close code the client can act on)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from typing import Any, NamedTuple

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState


class Close(NamedTuple):
    code: int
    reason: str


UNAUTHORIZED = Close(4401, "unauthorized")
SESSION_ENDED = Close(4403, "session ended")
SILENT = Close(4408, "no answer to pings")
TOO_MANY = Close(4429, "too many connections")
TOO_BIG = Close(1009, "message too big")
SLOW = Close(1013, "too slow: read what you missed from GET /v1/notifications")
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


class LiveSocket:
    def __init__(
        self, ws: WebSocket, *, user_id: str, session_id: str, process_id: str, queue_max: int
    ) -> None:
        self.ws = ws
        self.user_id = user_id
        self.session_id = session_id
        self.member = f"{process_id}:{secrets.token_hex(6)}"  # its presence entry
        loop = asyncio.get_running_loop()
        self.last_heard = self.last_ping = loop.time()
        # Bounded: a client that does not read is dropped, not buffered for.
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_max)
        self._ended: asyncio.Future[Close] = loop.create_future()

    def offer(self, message: str) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.end(SLOW)

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
        try:
            while True:
                await self.ws.send_text(await self._queue.get())
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.end(CLIENT_LEFT)

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
            # Any message answers a ping; what it says is not needed.
            self.last_heard = loop.time()


async def close_socket(ws: WebSocket, close: Close) -> None:
    """Close with ``close`` unless the socket is already closed (either side)."""
    if ws.application_state is WebSocketState.DISCONNECTED:
        return
    if ws.client_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await ws.close(code=close.code, reason=close.reason)
