"""The per-request log line: successful reads may be sampled away, never errors or writes."""

from __future__ import annotations

import pytest
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.testing import capture_logs

from bloghub.api import middleware as middleware_module
from bloghub.api.middleware import RequestId
from bloghub.logs import logged_path


def answering(status: int) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def call(middleware: RequestId, method: str, path: str = "/v1/x") -> None:
    scope: Scope = {"type": "http", "method": method, "path": path, "headers": []}

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        return None

    await middleware(scope, receive, send)


async def logged(
    status: int, method: str, sample_reads: float, monkeypatch: pytest.MonkeyPatch
) -> int:
    seen: list[tuple[str, int]] = []
    middleware = RequestId(
        answering(status),
        observe=lambda scope, code, s: seen.append((scope["method"], code)),
        sample_reads=sample_reads,
    )
    with capture_logs() as lines:
        # A fresh logger: the module's own may be cached with an earlier configuration.
        monkeypatch.setattr(middleware_module, "log", structlog.get_logger(__name__))
        for _ in range(20):
            await call(middleware, method)
    assert len(seen) == 20, "metrics count every request, sampled or not"
    return sum(1 for line in lines if line["event"] == "http.request")


async def test_every_request_is_logged_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await logged(200, "GET", 1.0, monkeypatch) == 20


async def test_sampled_reads_leave_errors_and_writes_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await logged(200, "GET", 0.0, monkeypatch) == 0
    assert await logged(404, "GET", 0.0, monkeypatch) == 20
    assert await logged(500, "GET", 0.0, monkeypatch) == 20
    assert await logged(201, "POST", 0.0, monkeypatch) == 20


async def test_a_realworld_profile_path_is_logged_without_its_username(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A username is personal data (sealed in the event log, "kept nowhere in clear"), and
    ``/api/profiles/{username}`` carries it: the request log kept it in clear, even after
    the account was erased."""
    middleware = RequestId(answering(200))
    with capture_logs() as lines:
        monkeypatch.setattr(middleware_module, "log", structlog.get_logger(__name__))
        for path in ("/api/profiles/Erin Private", "/api/profiles/Erin Private/follow"):
            await call(middleware, "POST", path)
        await call(middleware, "GET", "/api/articles/a-slug")
    paths = [line["path"] for line in lines if line["event"] == "http.request"]
    assert paths == [
        "/api/profiles/<username>",
        "/api/profiles/<username>/follow",
        "/api/articles/a-slug",
    ]
    assert logged_path("/v1/users/0b9e/follow") == "/v1/users/0b9e/follow"
    assert logged_path("/api/profiles/") == "/api/profiles/<username>"
    # Spellings no route takes are answered 404, and logged as sent: the name all the same.
    assert logged_path("/api//profiles/Erin") == "/api//profiles/<username>"
    assert logged_path("/API/Profiles/Erin/follow") == "/API/Profiles/<username>/follow"
    assert logged_path("/api/articles/profiles/x") == "/api/articles/profiles/x"
    assert logged_path("/api/./profiles/Erin") == "/api/profiles/<username>"
    assert logged_path("/api/x/../profiles/Erin/follow") == "/api/profiles/<username>/follow"
