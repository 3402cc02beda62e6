"""A loopback SMS gateway for tests: accepts, fails (500) or hangs, and keeps what it got."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.loopback import serve_asgi


class Gateway:
    """A loopback SMS gateway that can be told to accept, fail (500), fail slowly (500
    after ``slow_s``), fail quoting the request (400) or hang."""

    def __init__(self) -> None:
        self.mode: Literal["ok", "fail", "slow_fail", "hang", "echo_fail"] = "ok"
        self.slow_s = 0.3
        self.answered_at: list[float] = []
        self.received: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self.auth: list[str | None] = []
        self.release = asyncio.Event()
        self.url = ""

    async def endpoint(self, request: Request) -> JSONResponse:
        self.received.append(await request.json())
        self.received_at.append(time.monotonic())
        self.auth.append(request.headers.get("authorization"))
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "slow_fail":
            await asyncio.sleep(self.slow_s)
        self.answered_at.append(time.monotonic())
        if self.mode in ("fail", "slow_fail"):
            return JSONResponse({"error": "upstream down"}, status_code=500)
        if self.mode == "echo_fail":  # a gateway that quotes the request in its refusal
            return JSONResponse({"error": "refused", "request": self.received[-1]}, status_code=400)
        return JSONResponse({"accepted": True})

    def to(self, phone: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["phone"] == phone]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = Starlette(routes=[Route("/sms", gw.endpoint, methods=["POST"])])
    async with serve_asgi(app) as url:
        gw.url = f"{url}/sms"
        try:
            yield gw
        finally:
            gw.release.set()  # hanging requests end before the server stops
