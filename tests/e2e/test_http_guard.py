"""The HTTP server bounds what a client may hold: a head too large is refused, a head or a
body that stops coming is given up on, and the clients that behave are served meanwhile.
The bounds are shortened here; the server is the real app's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from bloghub.api import http_guard
from bloghub.settings import Settings
from tests.conftest import LiveServer
from tests.loopback import free_port, serve_asgi
from tests.support import projector_env, wait_until

pytestmark = pytest.mark.usefixtures("live_api")

HEAD_S = 0.5
BODY_S = 0.5


@pytest.fixture
def short_bounds() -> Iterator[None]:
    kept = http_guard._bounds
    http_guard._bounds = http_guard.Bounds(
        max_head_bytes=16 * 1024, head_timeout_s=HEAD_S, body_idle_timeout_s=BODY_S
    )
    try:
        yield
    finally:
        http_guard._bounds = kept


@contextlib.asynccontextmanager
async def connection(
    base_url: str,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    url = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """All the server sends until it closes, and how long that took."""
    started = time.monotonic()
    got = await asyncio.wait_for(reader.read(), timeout=10)
    return got, time.monotonic() - started


async def served(base_url: str) -> bool:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as c:
        return (await c.get("/healthz")).status_code == 200


async def test_a_head_too_large_is_refused_431_and_its_memory_let_go(
    live_api: LiveServer, short_bounds: None
) -> None:
    async with connection(live_api.url) as (reader, writer):
        writer.write(b"GET /v1/tags HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 20_000)
        await writer.drain()
        got, _ = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 431 "), got[:100]
    assert got.endswith(b"request head too large")
    # A whole head past the bound, in one write, is refused the same.
    async with connection(live_api.url) as (reader, writer):
        writer.write(b"GET /v1/tags HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 20_000 + b"\r\n\r\n")
        await writer.drain()
        got, _ = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 431 "), got[:100]
    assert await served(live_api.url)


async def test_a_head_within_the_bound_is_served_with_its_body_in_the_same_read(
    live_api: LiveServer, short_bounds: None
) -> None:
    """The bound is on the head alone: a body sent with it does not count."""
    body = b'{"email": "' + b"x" * 40_000 + b'@example.com", "password": "nope"}'
    async with connection(live_api.url) as (reader, writer):
        writer.write(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"x-pad: " + b"a" * 12_000 + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        await writer.drain()
        got, _ = await until_closed(reader)
    status = int(got.split(b" ", 2)[1])
    assert 400 <= status < 500, got[:300]
    assert status != 431, got[:300]


async def test_a_head_that_stops_coming_is_answered_408_and_others_are_served(
    live_api: LiveServer, short_bounds: None
) -> None:
    async with connection(live_api.url) as (reader, writer):
        writer.write(b"GET /v1/tags HTTP/1.1\r\nhost: x\r\nx-slow: ")
        await writer.drain()
        assert await served(live_api.url), "others are served while one stalls"
        got, took = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 408 "), got[:100]
    assert HEAD_S * 0.8 <= took < HEAD_S * 10, took


async def test_a_head_sent_a_byte_at_a_time_has_one_bound_in_all(
    live_api: LiveServer, short_bounds: None
) -> None:
    """Each byte in time is not enough: the head as a whole must end within the bound."""
    async with connection(live_api.url) as (reader, writer):
        started = time.monotonic()
        answer = asyncio.ensure_future(reader.read())
        for byte in b"GET /v1/tags HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaa":
            if answer.done():
                break  # answered and closed: the bound ran out
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(HEAD_S / 10)
        got = await asyncio.wait_for(answer, timeout=10)
    assert got.startswith(b"HTTP/1.1 408 "), got[:100]
    assert time.monotonic() - started < HEAD_S * 4


async def test_a_connection_that_sends_nothing_is_closed(
    live_api: LiveServer, short_bounds: None
) -> None:
    async with connection(live_api.url) as (reader, _):
        got, took = await until_closed(reader)
    assert got == b""
    assert took < HEAD_S * 10


async def test_a_body_that_stops_coming_closes_the_connection_and_records_nothing(
    live_api: LiveServer, short_bounds: None
) -> None:
    email = f"stalled-{time.monotonic_ns()}@example.com"
    body = b'{"email": "' + email.encode() + b'", "password": "Passw0rd!x", "nickname": "s"}'
    async with connection(live_api.url) as (reader, writer):
        writer.write(
            b"POST /v1/users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:20]
        )
        await writer.drain()
        got, took = await until_closed(reader)
    assert got == b"", got[:200]
    assert BODY_S * 0.8 <= took < BODY_S * 10, took
    async with httpx.AsyncClient(base_url=live_api.url, timeout=5) as c:
        login = await c.post("/v1/auth/login", json={"email": email, "password": "Passw0rd!x"})
    assert login.status_code == 401, login.text


async def test_a_slow_body_that_keeps_coming_is_served(
    live_api: LiveServer, short_bounds: None
) -> None:
    """The body's bound runs from its last bytes: an upload that keeps coming, however
    slowly, is taken whole."""
    body = b'{"email": "slow@example.com", "password": "' + b"p" * 40 + b'"}'
    async with connection(live_api.url) as (reader, writer):
        writer.write(
            b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
        )
        for at in range(0, len(body), 10):
            writer.write(body[at : at + 10])
            await writer.drain()
            await asyncio.sleep(BODY_S / 3)
        got, _ = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 401 "), got[:200]


async def test_pipelined_requests_are_each_answered(
    live_api: LiveServer, short_bounds: None
) -> None:
    one = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    async with connection(live_api.url) as (reader, writer):
        writer.write(one + one + last)
        await writer.drain()
        got, _ = await until_closed(reader)
    assert got.count(b"HTTP/1.1 200 ") == 3, got[:500]


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_bloghub_api_serves_through_the_guard_with_the_bounds_it_is_given(
    settings: Settings, tmp_path: Path, workers: str
) -> None:
    """One process (``server_config``) or several (uvicorn's workers, each configuring
    itself from the environment): both refuse by the settings' bounds."""
    port = free_port()
    env = {
        **projector_env(settings, batch=500),
        "BLOGHUB_API_PORT": str(port),
        "BLOGHUB_HTTP_HEAD_TIMEOUT_S": str(HEAD_S),
        "BLOGHUB_HTTP_MAX_HEAD_BYTES": str(16 * 1024),
    }
    api = _api_process(env, tmp_path / "api.log", workers)
    live = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return await served(live)
            return False

        await wait_until(up, timeout_s=60)
        async with connection(live) as (reader, writer):
            writer.write(b"GET /v1/tags HTTP/1.1\r\nhost: x\r\nx-slow: ")
            await writer.drain()
            got, took = await until_closed(reader)
        assert got.startswith(b"HTTP/1.1 408 "), got[:100]
        assert took < HEAD_S * 10
        async with connection(live) as (reader, writer):
            writer.write(b"GET /v1/tags HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 20_000)
            await writer.drain()
            got, _ = await until_closed(reader)
        assert got.startswith(b"HTTP/1.1 431 "), got[:100]
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(timeout=30)


def _api_process(env: dict[str, str], log_file: Path, workers: str) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "api", "--workers", workers],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _slow_and_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An app to watch the protocol with: ``/slow`` answers after a while, ``/echo``
    answers its body."""
    if scope["type"] != "http":
        return
    body = b"slow"
    if scope["path"] == "/slow-read":  # reads its body first, as a login's handler does
        await receive()
    if scope["path"].startswith("/slow"):  # "/slow" reads nothing, as a GET's handler does
        await asyncio.sleep(BODY_S * 3)
    else:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_a_body_pipelined_behind_a_slow_answer_is_not_cut(short_bounds: None) -> None:
    """The server reads nothing of a request pipelined behind one it is answering: that
    body's bytes wait unread, and the bound on a client's silence does not run out on
    them."""
    got = await _echoed_behind(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n", BODY_S / 3)
    assert got.count(b"HTTP/1.1 200 ") == 2, got
    assert b"helloworld" in got, got


async def _echoed_behind(ahead: bytes, pause_s: float) -> bytes:
    """What the server answers to ``ahead`` and, pipelined behind it, an echo of a body
    whose last half is sent ``pause_s`` after the rest."""
    async with serve_asgi(_slow_and_echo) as url, connection(url) as (reader, writer):
        writer.write(
            ahead + b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n"
            b"connection: close\r\n\r\nhello"
        )
        await writer.drain()
        await asyncio.sleep(pause_s)
        writer.write(b"world")
        await writer.drain()
        got, _ = await until_closed(reader)
    return got


async def test_a_body_queued_behind_an_answer_has_its_whole_bound_once_its_turn_comes(
    short_bounds: None,
) -> None:
    """The request ahead reads its own body, and so the server reads on, well before its
    answer is made: the queued body's bound waits for its request's turn all the same."""
    ahead = b"POST /slow-read HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    # Past the bound from the first send, yet soon after the answer ahead.
    got = await _echoed_behind(ahead, BODY_S * 3 + BODY_S / 3)
    assert got.count(b"HTTP/1.1 200 ") == 2, got
    assert b"helloworld" in got, got


BIG = b"x" * (2 * 1024 * 1024)


async def _big(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": BIG})


async def test_a_client_that_never_reads_its_answers_is_dropped_after_the_bound(
    short_bounds: None,
) -> None:
    """Thirty pipelined requests for 2 MB each, and nothing read: the answers back up in
    the server, which drops the connection once they have waited a whole bound, rather
    than hold its memory, socket and task for as long as the client likes."""
    asked = 30
    async with serve_asgi(_big) as url, connection(url) as (reader, writer):
        writer.write(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n" * asked)
        await writer.drain()
        await asyncio.sleep(BODY_S * 4)  # reads nothing meanwhile
        got = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(1 << 20), timeout=10):
                got += len(chunk)
    assert got < asked * len(BIG) / 2, got  # what the buffers held, not every answer


async def test_a_head_pipelined_unfinished_behind_a_whole_request_is_answered_408(
    live_api: LiveServer, short_bounds: None
) -> None:
    async with connection(live_api.url) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nho")
        await writer.drain()
        got, took = await until_closed(reader)
    assert got.startswith(b"HTTP/1.1 200 "), got[:100]
    assert b"HTTP/1.1 408 " in got, got
    assert took < HEAD_S * 5
