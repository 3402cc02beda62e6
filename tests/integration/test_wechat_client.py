"""The code exchange against a real HTTP server playing WeChat on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from bloghub.auth.wechat import WeChatClient, WeChatConfig, WeChatIdentity
from bloghub.errors import Unauthorized, Unavailable
from tests.wechat_server import APPID, SECRET, Mode, WeChatServer, wechat_server

TIMEOUT_S = 0.5
CODES: dict[str, tuple[str, str | None]] = {
    "code-alice": ("openid-alice", "unionid-alice"),
    "code_bob": ("openid-bob", None),
}


def config(token_url: str, *, secret: str = SECRET) -> WeChatConfig:
    return WeChatConfig(
        appid=APPID,
        secret=secret,
        authorize_url="https://open.weixin.qq.com/connect/qrconnect",
        token_url=token_url,
        redirect_uri="http://127.0.0.1:8000/v1/auth/wechat/callback",
        timeout_s=TIMEOUT_S,
    )


@pytest.fixture
async def wechat() -> AsyncIterator[WeChatServer]:
    async with wechat_server(CODES) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_a_good_code_gives_the_identity_and_sends_what_wechat_requires(
    wechat: WeChatServer, http: httpx.AsyncClient
) -> None:
    client = WeChatClient(config(wechat.token_url), http)

    assert await client.exchange("code-alice") == WeChatIdentity("openid-alice", "unionid-alice")
    assert await client.exchange("code_bob") == WeChatIdentity("openid-bob", None)
    assert wechat.requests[0] == {
        "appid": APPID,
        "secret": SECRET,
        "code": "code-alice",
        "grant_type": "authorization_code",
    }


async def test_an_unknown_or_reused_code_is_unauthorized_with_wechats_reason(
    wechat: WeChatServer, http: httpx.AsyncClient
) -> None:
    client = WeChatClient(config(wechat.token_url), http)
    with pytest.raises(Unauthorized, match="WeChat refused the code: invalid code"):
        await client.exchange("no-such-code")

    await client.exchange("code-alice")
    with pytest.raises(Unauthorized, match="WeChat refused the code"):
        await client.exchange("code-alice")


async def test_a_wrong_app_secret_is_refused_by_wechat(
    wechat: WeChatServer, http: httpx.AsyncClient
) -> None:
    client = WeChatClient(config(wechat.token_url, secret="f" * 32), http)
    with pytest.raises(Unauthorized, match="invalid appsecret"):
        await client.exchange("code-alice")


async def test_a_hanging_wechat_is_unavailable_after_about_the_timeout(
    wechat: WeChatServer, http: httpx.AsyncClient
) -> None:
    wechat.mode = "hang"
    client = WeChatClient(config(wechat.token_url), http)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Unavailable, match="in time"):
        await client.exchange("code-alice")
    # The bound is what keeps a login page from spinning: generous, but far below "forever".
    assert loop.time() - started < TIMEOUT_S + 1.5
    assert len(wechat.requests) == 1


@pytest.mark.parametrize(("mode", "message"), [("error500", "HTTP 500"), ("garbage", "JSON")])
async def test_a_failing_wechat_is_unavailable(
    wechat: WeChatServer, http: httpx.AsyncClient, mode: Mode, message: str
) -> None:
    wechat.mode = mode
    client = WeChatClient(config(wechat.token_url), http)
    with pytest.raises(Unavailable, match=message):
        await client.exchange("code-alice")


async def test_an_unreachable_wechat_is_unavailable(http: httpx.AsyncClient) -> None:
    # A port that was just free and is now closed: the connection is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = WeChatClient(config(f"http://127.0.0.1:{port}/sns/oauth2/access_token"), http)
    with pytest.raises(Unavailable, match="could not be reached") as caught:
        await client.exchange("code-alice")
    # Errors reach logs and clients; the app secret must not ride along in them.
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
