"""The guard's timers when the server holds a client up (an answer being made ahead of a
pipelined request): the client's bound starts again when the server resumes, and a timer
due in the same turn of the loop as the resumption cannot cut it before the bytes waiting
in the socket are read. Driven turn by turn on a transport that records what the server
does, so the order of that one turn is not left to chance (the e2e tests show the whole
exchange)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
import uvicorn
from uvicorn.server import ServerState

from bloghub.api import http_guard
from bloghub.api.http_guard import Bounds, GuardedHttp


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.aborted = False
        self.buffered = 0  # bytes written that the client has not taken yet
        self.written = b""
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )


class _Slow:
    """``/slow`` answers once released (``/slow-read`` reads its body first, as a login's
    handler does); anything else answers its body."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow-read":
            await receive()  # uvicorn resumes reading for it, with the next body unread
        if scope["path"].startswith("/slow"):
            await self.released.wait()
        else:
            while (await receive()).get("more_body", False):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


async def _connected(app: _Slow) -> tuple[GuardedHttp, _Transport]:
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    protocol = GuardedHttp(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def _answered(app: _Slow, transport: _Transport) -> None:
    """Lets ``/slow`` answer, which resumes the server's reading."""
    app.released.set()
    for _ in range(100):
        if b"done" in transport.written:
            return
        await asyncio.sleep(0)
    raise AssertionError("/slow was not answered")


async def _hung_up(protocol: GuardedHttp) -> None:
    protocol.connection_lost(None)
    await asyncio.gather(*protocol.tasks)


PIPELINED_BODY = (
    b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n"
    b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello"
)


def _due_in(timer: asyncio.TimerHandle | None) -> float:
    assert timer is not None
    assert not timer.cancelled()
    return timer.when() - asyncio.get_running_loop().time()


async def test_a_body_waiting_unread_has_a_whole_bound_once_reading_resumes() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(PIPELINED_BODY)
    assert protocol.flow.read_paused  # pipelined behind an answer being made
    protocol._body_late()  # the bound runs out while the server holds the client up
    assert not transport.closed
    held = protocol._body_timer  # armed again, for a bound from now

    await asyncio.sleep(0.2)  # the answer takes a while yet
    await _answered(app, transport)  # reading resumes; "world" waits in the socket
    assert not protocol.flow.read_paused
    # A whole bound from now, whatever was due: the old timer is cancelled, so one due in
    # this same turn cannot run ahead of the read of the bytes that waited.
    assert held is not None
    assert held.cancelled()
    assert _due_in(protocol._body_timer) > protocol._bounds.body_idle_timeout_s - 0.05

    protocol._body_late()  # a whole bound later with nothing sent: the client's silence
    assert transport.closed
    await _hung_up(protocol)


async def test_a_body_held_for_less_than_its_bound_is_not_charged_for_the_hold() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(PIPELINED_BODY)
    await asyncio.sleep(0.2)  # held, no timer due meanwhile
    await _answered(app, transport)
    assert _due_in(protocol._body_timer) > protocol._bounds.body_idle_timeout_s - 0.05
    await _hung_up(protocol)


async def test_a_body_queued_behind_an_answer_is_not_cut_while_the_answer_is_made() -> None:
    """The request ahead reads its own body: reading resumes at once, long before its
    answer, with the queued request's body still to come. That body's bound waits for its
    request's turn, and runs whole from the answer ahead."""
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(
        b"POST /slow-read HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello"
    )
    for _ in range(10):
        await asyncio.sleep(0)
    assert not protocol.flow.read_paused  # the handler ahead read its body
    protocol._body_late()  # a whole bound passes while the answer ahead is still made
    assert not transport.closed

    await asyncio.sleep(0.2)
    await _answered(app, transport)
    assert _due_in(protocol._body_timer) > protocol._bounds.body_idle_timeout_s - 0.05
    protocol._body_late()  # a whole bound after its turn came, with nothing sent
    assert transport.closed
    await _hung_up(protocol)


async def test_a_byte_after_resuming_restarts_the_bound_as_usual() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(PIPELINED_BODY)
    await _answered(app, transport)
    protocol.data_received(b"wor")
    assert _due_in(protocol._body_timer) > protocol._bounds.body_idle_timeout_s - 0.05
    protocol._body_late()  # a whole bound after the last bytes with nothing more
    assert transport.closed
    await _hung_up(protocol)


async def test_a_head_pipelined_behind_an_answer_has_a_whole_bound_once_it_is_made() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\nho")
    protocol._head_late()  # the answer is still being made
    assert not transport.closed

    await asyncio.sleep(0.2)
    await _answered(app, transport)
    assert _due_in(protocol._head_timer) > protocol._bounds.head_timeout_s - 0.05

    protocol._head_late()  # a whole bound later, the head still unfinished
    assert b"HTTP/1.1 408 " in transport.written, transport.written
    assert transport.closed
    await _hung_up(protocol)


async def test_a_head_begun_behind_an_answer_is_not_closed_by_the_keep_alive_bound() -> None:
    """uvicorn arms its keep-alive bound (5 s) when an answer is made with nothing queued:
    it would close, silently, a connection whose next head is under way and has seconds
    of its own bound left."""
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\nho")
    await _answered(app, transport)
    assert protocol.timeout_keep_alive_task is None
    assert _due_in(protocol._head_timer) > protocol._bounds.head_timeout_s - 0.05
    await _hung_up(protocol)


async def test_an_idle_connection_after_an_answer_still_has_the_keep_alive_bound() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
    await _answered(app, transport)
    assert protocol.timeout_keep_alive_task is not None
    await _hung_up(protocol)


async def test_a_body_that_comes_after_its_answer_then_has_the_keep_alive_bound() -> None:
    """Answered before its body was in (a 401 for a write without a token): the body has
    its own bound while it comes, and the connection the keep-alive bound after it."""
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello")
    await _answered(app, transport)
    assert protocol.timeout_keep_alive_task is None  # the body's bound runs instead
    assert protocol._body_timer is not None
    protocol.data_received(b"world")
    assert protocol.timeout_keep_alive_task is not None
    await _hung_up(protocol)


async def test_answers_backed_up_unread_for_a_whole_bound_drop_the_connection() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    transport.buffered = 4_000_000
    protocol.pause_writing()  # the transport's buffer is full: the client reads nothing
    assert _due_in(protocol._write_timer) > protocol._bounds.body_idle_timeout_s - 0.05
    protocol.resume_writing()  # it took enough: the bound starts again at the next stall
    assert protocol._write_timer is None
    protocol.pause_writing()
    protocol._write_late()  # a whole bound, and nothing taken
    assert transport.aborted  # dropped, unsent bytes and all: a close would wait on them
    await _hung_up(protocol)


async def test_a_client_that_takes_answers_however_slowly_is_not_dropped() -> None:
    app = _Slow()
    protocol, transport = await _connected(app)
    transport.buffered = 4_000_000
    protocol.pause_writing()
    for _ in range(5):
        transport.buffered -= 4096  # a few kilobytes taken in each bound
        protocol._write_late()
        assert not transport.aborted
        assert _due_in(protocol._write_timer) > protocol._bounds.body_idle_timeout_s - 0.05
    protocol._write_late()  # then nothing for a whole bound
    assert transport.aborted
    await _hung_up(protocol)


async def test_a_request_begun_in_the_read_after_an_early_answer_is_not_closed_by_keep_alive() -> (
    None
):
    """Answered before its body was in (a 401), the body then ends in the same read as the
    next request begins: that request has its own bound, not the keep-alive's 5 s."""
    app = _Slow()
    protocol, transport = await _connected(app)
    protocol.data_received(b"POST /slow HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello")
    await _answered(app, transport)
    protocol.data_received(b"world" + b"GET /v1/ta")
    assert protocol.timeout_keep_alive_task is None
    assert _due_in(protocol._head_timer) > protocol._bounds.head_timeout_s - 0.05
    await _hung_up(protocol)


async def test_the_request_being_answered_learns_the_client_went_away() -> None:
    """uvicorn tells only the last request of the pipeline; the one being answered would
    write on to the closed transport and fail with an error in the log."""
    app = _Slow()
    protocol, _ = await _connected(app)
    protocol.data_received(
        b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\nGET /slow HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    answering = protocol._answering
    assert answering is not None
    assert answering is not protocol.cycle  # the second waits in the pipeline
    protocol.connection_lost(None)
    assert answering.disconnected
    app.released.set()
    await asyncio.gather(*protocol.tasks)


async def test_a_timeout_is_logged_in_no_request_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timer armed while an answer was made (its request id bound for the log) is about
    the connection's next request: its line carries no request id of another's."""
    seen: list[tuple[str, dict[str, Any]]] = []

    class _Log:
        def info(self, event: str, **_: Any) -> None:
            seen.append((event, structlog.contextvars.get_contextvars()))

    monkeypatch.setattr(http_guard, "log", _Log())
    protocol, transport = await _connected(_Slow())
    protocol._bounds = Bounds(body_idle_timeout_s=0.05)
    with structlog.contextvars.bound_contextvars(request_id="the-answer-before"):
        protocol.data_received(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nhello")
    for _ in range(50):
        if transport.closed:
            break
        await asyncio.sleep(0.02)
    assert seen == [("http.body_timeout", {})]
    await _hung_up(protocol)
