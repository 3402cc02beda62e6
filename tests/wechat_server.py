"""A real HTTP server on loopback standing in for WeChat's ``sns/oauth2/access_token``.

WeChat cannot be reached from tests, but the client's failure handling (timeouts, 5xx,
non-JSON) is only believable against a real socket, so this is a server, not a mock.
It answers the way WeChat does: HTTP 200 with either the token JSON or ``{errcode, errmsg}``,
and each code works once (WeChat answers 40163 for a reused code).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.loopback import serve_asgi

APPID = "wx0123456789abcdef"
SECRET = "0123456789abcdef0123456789abcdef"
TOKEN_PATH = "/sns/oauth2/access_token"

Mode = Literal["ok", "hang", "error500", "garbage"]


def _error(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


class WeChatServer:
    """What the tests see: the base ``url``, a ``mode`` switch and the ``requests`` received."""

    def __init__(
        self, codes: dict[str, tuple[str, str | None]], *, appid: str, secret: str
    ) -> None:
        self.codes = dict(codes)
        self.appid = appid
        self.secret = secret
        self.mode: Mode = "ok"
        self.requests: list[dict[str, str]] = []
        self.url = ""
        # Hanging handlers wait on this; setting it at shutdown lets uvicorn stop promptly.
        self.release = asyncio.Event()

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    async def access_token(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.requests.append(query)
        if self.mode == "hang":
            await self.release.wait()
            return _error(-1, "system error")
        if self.mode == "error500":
            return PlainTextResponse("internal error", status_code=500)
        if self.mode == "garbage":
            return PlainTextResponse("<html>busy</html>", media_type="text/html")
        return self._answer(query)

    def _answer(self, query: dict[str, str]) -> Response:
        if query.get("appid") != self.appid:
            return _error(40013, "invalid appid")
        if query.get("secret") != self.secret:
            return _error(40125, "invalid appsecret")
        if query.get("grant_type") != "authorization_code":
            return _error(40002, "invalid grant_type")
        known = self.codes.pop(query.get("code", ""), None)
        if known is None:
            return _error(40029, "invalid code")
        openid, unionid = known
        body: dict[str, object] = {
            "access_token": f"ACCESS-{openid}",
            "expires_in": 7200,
            "refresh_token": f"REFRESH-{openid}",
            "openid": openid,
            "scope": "snsapi_login",
        }
        if unionid is not None:
            body["unionid"] = unionid
        return JSONResponse(body)


@contextlib.asynccontextmanager
async def wechat_server(
    codes: dict[str, tuple[str, str | None]], *, appid: str = APPID, secret: str = SECRET
) -> AsyncIterator[WeChatServer]:
    """Serve fake WeChat on 127.0.0.1 (a free port) in the running event loop.

    ``codes`` maps each valid code to ``(openid, unionid or None)``.
    """
    fake = WeChatServer(codes, appid=appid, secret=secret)
    app = Starlette(routes=[Route(TOKEN_PATH, fake.access_token)])
    async with serve_asgi(app) as url:
        fake.url = url
        try:
            yield fake
        finally:
            fake.release.set()  # hanging requests end before the server stops
