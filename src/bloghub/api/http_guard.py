"""The HTTP server's guard against clients that send too much head, send too slowly, or
never read.

uvicorn's httptools protocol buffers a request's line and headers however long they grow,
and waits for the rest of a request however long it takes: a few clients sending half a
request hold the process's memory and sockets for as long as they like. ``GuardedHttp``
is that protocol with these bounds:

- the request line and headers together over ``max_head_bytes``: 431, connection closed;
- a head begun (or a connection opened) and not finished within ``head_timeout_s``: 408,
  connection closed (silently when nothing was sent);
- a body no byte of which came for ``body_idle_timeout_s``: connection closed, and the
  app's ``receive`` learns the client went away (nothing of the request is applied);
- answers backed up (the transport's buffer full) of which the client took nothing for
  ``body_idle_timeout_s``: the connection dropped, with what was unsent (a client that
  pipelines and never reads).

The bounds come from the settings (``configure``), in each process that serves."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import socket
import struct
import termios
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from bloghub.settings import Settings

log = structlog.get_logger(__name__)

_HEAD_END = b"\r\n\r\n"

# Set in a request's scope once the whole request (its body too) has come: a session the
# app checked before then is checked again once the body is in (``api/auth.py``), so a
# request held open cannot outlive a logout answered meanwhile.
WHOLE = "bloghub.whole"


def whole(scope: Mapping[str, Any]) -> bool:
    """Whether the request had all come when this was asked (False if not known: a server
    other than ``GuardedHttp``)."""
    return bool(scope.get(WHOLE, False))


@dataclass(frozen=True)
class Bounds:
    max_head_bytes: int = 80 * 1024
    head_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0


_bounds = Bounds()


def configure(settings: Settings) -> None:
    """This process's bounds, from ``settings`` (before it serves)."""
    global _bounds
    _bounds = Bounds(
        max_head_bytes=settings.http_max_head_bytes,
        head_timeout_s=settings.http_head_timeout_s,
        body_idle_timeout_s=settings.http_body_idle_timeout_s,
    )


def _refusal(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: "
        + str(len(message)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + message
    )


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above. A request whose head and body
    come whole in one read, as nearly all do, arms no timer of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bounds = _bounds
        self._in_head = True  # what comes next is a request's line and headers
        self._in_body = False  # a request's head is in, its body is not all in yet
        self._begun = False  # the parser has seen a head begin (pipelined ones too)
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head so far: its end may span two reads
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._unsent_when_armed = 0
        # The request whose answer is being made (``self.cycle`` is the last one whose head
        # came, which may wait in the pipeline behind it).
        self._answering: RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _Flow(transport, self._reading_resumed)
        self._arm_head()  # a connection that never sends is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head()
        self._cancel_body()
        self._cancel_write()
        answering = self._answering
        if answering is not None and not answering.response_complete:
            # uvicorn tells only the last request of the pipeline that the client went; the
            # one being answered would write on to the closed transport, and fail loudly.
            answering.disconnected = True
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and data:
            end = self._head_end(data)
            if self._head_bytes + (len(data) if end < 0 else end) > self._bounds.max_head_bytes:
                self._refuse(b"431 Request Header Fields Too Large", b"request head too large")
                return
            self._head_bytes += len(data)
            if end < 0:  # the head goes on in the next read
                self._tail = (self._tail + data[-3:])[-3:]
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head:
            if (self._head_bytes or self._begun) and self._head_timer is None:
                self._arm_head()  # a head begun: it has the bound to end in, however sent
        elif self._in_body:
            self._arm_body()  # a body under way: the bound runs from its last bytes

    def _head_end(self, data: bytes) -> int:
        """How many bytes of ``data`` the head takes, its blank line included; -1 if it
        does not end in them."""
        if self._tail:
            at = (self._tail + data[:3]).find(_HEAD_END)
            if at >= 0:
                return at + len(_HEAD_END) - len(self._tail)
        at = data.find(_HEAD_END)
        return -1 if at < 0 else at + len(_HEAD_END)

    def on_message_begin(self) -> None:
        self._begun = True  # also one pipelined behind a request ended in the same read
        # A request under way has its own bounds: a keep-alive armed earlier in this read
        # (an answer made before its body was in) must not close the connection on it.
        self._unset_keepalive_if_required()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head, self._begun = False, False
        if self._head_timer is not None:  # (tested first: this runs for every request)
            self._cancel_head()
        self._in_body = not (self.parser.should_upgrade() and self._should_upgrade())
        super().on_headers_complete()
        if self.cycle is not None and not (self.pipeline and self._queued()):
            self._answering = self.cycle  # started at once: nothing was being answered

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._cancel_body()
        self._in_head, self._in_body, self._head_bytes, self._tail = True, False, 0, b""
        self.scope[WHOLE] = True  # type: ignore[literal-required]
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            # Answered before its body was all in (a 401, say): the keep-alive bound that
            # the answer would have armed starts now.
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def on_response_complete(self) -> None:
        following = self.pipeline[-1][0] if self.pipeline else None
        super().on_response_complete()  # starts the next request pipelined, if any
        if following is not None and all(cycle is not following for cycle, _ in self.pipeline):
            self._answering = following  # taken from the pipeline and started
        if self._begun or self._head_bytes or self._in_body:
            # A request under way (its head begun, or its body coming): its own bound runs,
            # not uvicorn's keep-alive, which would close the connection on it silently.
            self._unset_keepalive_if_required()
        if self._in_head and self._head_timer is not None:
            self._arm_head()  # a head pipelined behind the answer: its bound starts now
        elif self._in_body and self._body_timer is not None:
            self._arm_body()  # a body queued behind the answer: its bound starts now

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._arm_write()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_write()  # the client read: its bound starts again at the next stall

    def _arm_write(self) -> None:
        self._unsent_when_armed = self._unsent()
        self._write_timer = self._later(self._bounds.body_idle_timeout_s, self._write_late)

    def _cancel_write(self) -> None:
        _cancel(self._write_timer)
        self._write_timer = None

    def _unsent(self) -> int:
        """Bytes of answers the client has not taken yet: in the transport's buffer, and
        in the kernel's (sent or not, not acknowledged), where most of them wait: the
        transport's buffer moves only when a third of the kernel's is free, megabytes."""
        unsent = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                unsent += struct.unpack("i", out)[0]
        return unsent

    def _write_late(self) -> None:
        """The client took nothing of the answers for a whole bound while they backed up
        (one that pipelines requests and never reads holds memory, a socket and a task
        for as long as it likes): the connection is dropped, its unsent bytes with it. A
        client that took some, however slowly, has another bound."""
        self._write_timer = None
        if not self.flow.write_paused:  # (a transport closing still holds what is unsent)
            return
        if self._unsent() < self._unsent_when_armed:
            self._arm_write()
            return
        log.info("http.write_timeout", client=_client(self.client))
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Reset, not closed: a closed socket's kernel would keep trying to send what is
            # unsent (megabytes) to a client that reads nothing, for minutes.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _queued(self) -> bool:
        """Whether the request whose body is under way waits behind answers still to be
        made (pipelined): the server takes none of its body until its turn."""
        return any(cycle is self.cycle for cycle, _ in self.pipeline)

    def _reading_resumed(self) -> None:
        """The server reads again: the body under way has a whole bound from now, not
        from its last bytes (the time the server held it was no client's silence). Armed
        now, a timer due in this same turn of the loop is cancelled before it can run
        ahead of the read of the bytes that waited."""
        if self._in_body and self._body_timer is not None:
            self._arm_body()

    # --- the timers -------------------------------------------------------------------

    def _later(self, delay_s: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """``callback`` after ``delay_s``, run outside any request's context: a timer is
        often armed while an answer is made (whose request id the log lines would carry)
        for the connection's next request."""
        return self.loop.call_later(delay_s, callback, context=contextvars.Context())

    def _arm_head(self) -> None:
        self._cancel_head()
        self._head_timer = self._later(self._bounds.head_timeout_s, self._head_late)

    def _cancel_head(self) -> None:
        _cancel(self._head_timer)
        self._head_timer = None

    def _arm_body(self) -> None:
        self._cancel_body()
        self._body_timer = self._later(self._bounds.body_idle_timeout_s, self._body_late)

    def _cancel_body(self) -> None:
        _cancel(self._body_timer)
        self._body_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer is still being made: the next head (pipelined) waits for it, and
            # has a whole bound once it is made (``on_response_complete``).
            self._arm_head()
            return
        if self._head_bytes == 0 and not self._begun:
            self.transport.close()  # nothing sent: an idle connection, closed
            return
        log.info("http.head_timeout", client=_client(self.client), received=self._head_bytes)
        self._refuse(b"408 Request Timeout", b"request head not finished in time")

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused or self._queued():
            # The server stopped reading (a body the app has not taken yet), or the request
            # waits its turn behind others being answered: what is unread is no client's
            # silence. The client has a whole bound again once reading resumes (``_Flow``)
            # and once each answer ahead is made (``on_response_complete``).
            self._arm_body()
            return
        log.info("http.body_timeout", client=_client(self.client))
        self.transport.close()

    def _refuse(self, status: bytes, message: bytes) -> None:
        self._cancel_head()
        self._cancel_body()
        self.transport.write(_refusal(status, message))
        self.transport.close()


class _Flow(FlowControl):
    """uvicorn's flow control, telling the protocol when reading resumes."""

    def __init__(self, transport: asyncio.Transport, resumed: Callable[[], None]) -> None:
        super().__init__(transport)
        self._resumed = resumed

    def resume_reading(self) -> None:
        if self.read_paused:  # (else nothing to do, after every answer)
            super().resume_reading()
            self._resumed()


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


def _client(client: tuple[str, int] | None) -> str | None:
    return None if client is None else client[0]
