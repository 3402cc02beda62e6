"""ASGI middleware: request ids and the request body size limit."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bloghub.errors import PayloadTooLarge
from bloghub.ids import new_id_str
from bloghub.logs import AccessLog

log = structlog.get_logger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
READS = frozenset({"GET", "HEAD"})


Observer = Callable[[Scope, int, float], None]


class RequestId:
    """Binds a request id (the caller's ``X-Request-Id`` if sane) to logs and the response,
    logs each request, and hands its status and duration to ``observe``. Only a share
    ``sample_reads`` of successful reads is logged (all of them by default); writes and
    errors always are."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        observe: Observer | None = None,
        sample_reads: float = 1.0,
        access_log: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.observe = observe
        self.sample_reads = sample_reads
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else new_id_str()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        status = 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send_with_id(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                seconds = time.perf_counter() - started
                if not self._logged(scope["method"], status):
                    pass
                elif self.access_log is not None:
                    ms = round(seconds * 1000, 2)
                    self.access_log(scope["method"], scope["path"], status, ms, request_id)
                else:
                    log.info(
                        "http.request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        ms=round(seconds * 1000, 2),
                    )
                if self.observe is not None:
                    self.observe(scope, status, seconds)

    def _logged(self, method: str, status: int) -> bool:
        if status >= 400 or method not in READS or self.sample_reads >= 1.0:
            return True
        return random.random() < self.sample_reads


class BodyLimit:
    """Refuses bodies over ``max_bytes`` whether or not Content-Length tells the truth."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        too_big = False
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if too_big:
                raise PayloadTooLarge("the request body is too large")
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge("the request body is too large")
            return message

        await self.app(scope, limited, send)
