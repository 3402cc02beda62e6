"""The fast path runs in front of the error middleware: whatever of it fails before its
first send leaves the request to the stack, which answers it (in the API's error shape if
it must), never to the server's bare 500."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from bloghub.api.fast_reads import FastReads
from bloghub.api.middleware import RequestLog
from bloghub.auth.limiter import LocalLimiter

BODY = b'{"articles":[]}'


class Broken(LocalLimiter):
    def take(self, key: str) -> bool:
        raise RuntimeError("a bug in the limit")


async def _stack(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"the stack"})


def _scope() -> dict[str, Any]:
    encoded = SimpleNamespace(body=BODY, raw_headers=[(b"content-type", b"application/json")])
    snapshot = SimpleNamespace(answer=lambda limit, stale: encoded)
    ranking = SimpleNamespace(snapshot=snapshot, stale=False)
    container = SimpleNamespace(settings=SimpleNamespace(cors_origins=[]), ranking=ranking)
    app = SimpleNamespace(state=SimpleNamespace(container=container))
    return {
        "type": "http",
        "method": "GET",
        "path": "/v1/ranking/hot",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "app": app,
    }


async def _served(fast: FastReads) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await fast(_scope(), receive, send)
    return sent


async def test_the_fast_path_answers_from_what_it_holds() -> None:
    fast = FastReads(_stack, log=RequestLog(), local=LocalLimiter(10, 60.0))
    sent = await _served(fast)
    assert sent[-1]["body"] == BODY


async def test_a_failure_before_the_first_send_leaves_the_request_to_the_stack() -> None:
    fast = FastReads(_stack, log=RequestLog(), local=Broken(10, 60.0))
    sent = await _served(fast)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1]["body"] == b"the stack"
