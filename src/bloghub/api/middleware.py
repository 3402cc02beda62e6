"""ASGI middleware: request ids and the request body size limit."""

from __future__ import annotations

import itertools
import random
import re
import secrets
import time
from collections.abc import Callable

import structlog
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bloghub.api.errors import on_driver_error
from bloghub.api.http import shaped_error
from bloghub.errors import PayloadTooLarge
from bloghub.logs import AccessLog, logged_path

log = structlog.get_logger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
READS = frozenset({"GET", "HEAD"})


Observer = Callable[[Scope, int, float], None]


def _header(scope: Scope, name: bytes) -> bytes:
    """One request header's value (the first), without building a dict of them all."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


# On every answer: a browser takes each for the type it says it is, never guessing (a
# JSON answer holding user text is not run as a page or a script).
NOSNIFF = (b"x-content-type-options", b"nosniff")
# On an answer to a request that carried credentials, or that sets a cookie (a credential
# or a login's state), unless it says otherwise: what one person was shown (their email,
# their notifications) is not kept in a browser's cache, nor handed to another by a
# shared one.
NO_STORE = (b"cache-control", b"no-store")


def _personal(scope: Scope) -> bool:
    """Whether the request carried credentials (a token, or a cookie: the operator's)."""
    return any(key in (b"authorization", b"cookie") for key, _ in scope["headers"])


def _hardened(headers: list[tuple[bytes, bytes]], personal: bool) -> list[tuple[bytes, bytes]]:
    personal = personal or any(key.lower() == b"set-cookie" for key, _ in headers)
    if personal and not any(key.lower() == b"cache-control" for key, _ in headers):
        return [*headers, NOSNIFF, NO_STORE]
    return [*headers, NOSNIFF]


class RequestIds:
    """Request ids unique across processes: a random prefix drawn once per process, then a
    counter. A UUID per request (a lock, two ``getrandom`` calls, the object and its text)
    cost more than the rest of the id's handling together."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._count):x}"

    def given_or_next(self, given: bytes) -> str:
        """The caller's ``X-Request-Id`` if sane, else a new one."""
        if not given:
            return self.next()
        text = given.decode("latin-1")
        return text if _REQUEST_ID.match(text) else self.next()


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
        ids: RequestIds | None = None,
    ) -> None:
        self.app = app
        self.log = RequestLog(observe=observe, sample_reads=sample_reads, access_log=access_log)
        self._ids = ids or RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._ids.given_or_next(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        personal = _personal(scope)
        status = 0
        started = time.perf_counter()

        async def send_noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = _hardened(list(message.get("headers", [])), personal)
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        # Bound and reset by hand: structlog's context manager costs a generator per request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_noting)
        except Exception as exc:
            if status:  # the answer had begun: only the server can end it now
                raise
            # An error a middleware between here and the router raised (the router's own
            # are answered inside it): answered here in the error shape, logged once, the
            # connection kept, rather than by the outermost handler, which re-raises to
            # the server (a second traceback, and the connection dropped).
            response = await on_driver_error(Request(scope), exc)
            await response(scope, receive, send_noting)
        finally:
            status = status or 500
            structlog.contextvars.reset_contextvars(**tokens)
            self.log.done(scope, status, time.perf_counter() - started, request_id)


class RequestLog:
    """What each request leaves behind: its log line (only a share ``sample_reads`` of
    successful reads; writes and errors always) and its metrics (every request)."""

    def __init__(
        self,
        *,
        observe: Observer | None = None,
        sample_reads: float = 1.0,
        access_log: AccessLog | None = None,
    ) -> None:
        self.observe = observe
        self.sample_reads = sample_reads
        self.access_log = access_log

    def done(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        if self._logged(scope["method"], status):  # reads may be sampled; metrics never are
            self._log(scope, status, seconds, request_id)
        if self.observe is not None:
            self.observe(scope, status, seconds)

    def _log(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        path = logged_path(scope["path"])
        if self.access_log is not None:
            ms = round(seconds * 1000, 2)
            self.access_log(scope["method"], path, status, ms, request_id)
        else:
            log.info(
                "http.request",
                method=scope["method"],
                path=path,
                status=status,
                ms=round(seconds * 1000, 2),
                request_id=request_id,
            )

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
        length = _header(scope, b"content-length") or None
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
                raise PayloadTooLarge.over(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge.over(self.max_bytes)
            return message

        await self.app(scope, limited, send)


# The APIs browser front ends call. The operator's pages and metrics are never shared
# with another origin: a script on a front end of the same site (whose requests carry the
# operator's SameSite cookie) must not read the dashboard or act in the operator's name.
CORS_PATHS = ("/v1/", "/api/")


class ShapedCORS(CORSMiddleware):
    """Starlette's CORS for the APIs (``CORS_PATHS``) only, and a preflight it refuses (an
    origin, method or header not allowed) is answered in the error shape of the API the
    path belongs to, not as plain text: a front end reads every refusal the same way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CORS_PATHS):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                answer = self.preflight_response(request_headers=headers)
                if answer.status_code == 400:
                    answer = _shaped_refusal(scope["path"], answer)
                await answer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _shaped_refusal(path: str, plain: Response) -> Response:
    kept = {k: v for k, v in plain.headers.items() if k.startswith("access-control") or k == "vary"}
    message = bytes(plain.body).decode() or "CORS preflight refused"
    body = shaped_error(path, "cors_refused", message, "cors")
    return JSONResponse(body, status_code=400, headers=kept)
