"""WeChat QR login end to end, with a real HTTP server on loopback in WeChat's place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from bloghub.auth import wechat
from bloghub.logs import Seldom
from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.wechat_server import APPID, SECRET, WeChatServer, wechat_server

CODES = {
    "code-a": ("openid-a", "union-a"),
    "code-a2": ("openid-a", "union-a"),
    "code-b": ("openid-b", None),
}


@dataclass
class WeChatSite:
    client: httpx.AsyncClient
    wechat: WeChatServer


@pytest.fixture
async def site(settings: Settings, live_api: LiveServer) -> AsyncIterator[WeChatSite]:
    async with wechat_server(dict(CODES)) as fake:
        configured = settings.model_copy(
            update={
                "wechat_appid": APPID,
                "wechat_secret": SecretStr(SECRET),
                "wechat_token_url": fake.token_url,
                "wechat_timeout_s": 0.5,
            }
        )
        async with (
            serve(configured) as live,
            httpx.AsyncClient(
                base_url=live.url, headers={"user-agent": "wechat-tests/1"}, timeout=10
            ) as client,
        ):
            yield WeChatSite(client, fake)


async def _state(client: httpx.AsyncClient) -> str:
    answer = await client.get("/v1/auth/wechat/authurl")
    assert answer.status_code == 200
    url = urlsplit(answer.json()["url"])
    query = parse_qs(url.query)
    assert query["appid"] == [APPID]
    assert url.fragment == "wechat_redirect"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    # A browser's login state, never handed to another by a shared cache.
    assert answer.headers["cache-control"] == "no-store"
    state: str = query["state"][0]
    return state


async def test_qr_login_makes_one_account_per_open_id(site: WeChatSite) -> None:
    state = await _state(site.client)
    first = await site.client.get(f"/v1/auth/wechat/callback?code=code-a&state={state}")
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert first.headers["x-jwt-token"] == tokens["access_token"]
    me = await site.client.get(
        "/v1/users/me", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["user"]["wechat_bound"] is True

    state = await _state(site.client)
    again = await site.client.get(f"/v1/auth/wechat/callback?code=code-a2&state={state}")
    assert again.status_code == 200
    assert again.json()["user"]["id"] == tokens["user"]["id"]
    assert site.wechat.requests[-1]["grant_type"] == "authorization_code"


async def test_a_callback_signs_in_once(site: WeChatSite) -> None:
    """Replayed with its cookie (a shared browser's history, say), a callback starts no
    second session, even from a WeChat that would take the code again."""
    state = await _state(site.client)
    cookies = dict(site.client.cookies)
    first = await site.client.get(f"/v1/auth/wechat/callback?code=code-a&state={state}")
    assert first.status_code == 200, first.text
    site.client.cookies.update(cookies)
    site.wechat.codes["code-a"] = CODES["code-a"]  # a WeChat that takes the code again
    replayed = await site.client.get(f"/v1/auth/wechat/callback?code=code-a&state={state}")
    assert replayed.status_code == 401, replayed.text
    assert "used already" in replayed.json()["error"]["message"]
    assert "x-jwt-token" not in replayed.headers


async def test_state_must_match_the_cookie(site: WeChatSite) -> None:
    await _state(site.client)
    forged = await site.client.get("/v1/auth/wechat/callback?code=code-b&state=abcdef0123456789")
    assert forged.status_code == 401
    site.client.cookies.clear()
    no_cookie = await site.client.get("/v1/auth/wechat/callback?code=code-b&state=abc")
    assert no_cookie.status_code == 401


async def test_a_repeated_code_or_state_is_422_and_signs_no_one_in(site: WeChatSite) -> None:
    state = await _state(site.client)
    for query in (f"code=code-a&code=code-b&state={state}", f"code=code-a&state={state}&state=x"):
        twice = await site.client.get(f"/v1/auth/wechat/callback?{query}")
        assert twice.status_code == 422, twice.text
        assert "is given more than once" in twice.json()["error"]["fields"].values()
    assert site.wechat.requests == []  # WeChat was not asked
    once = await site.client.get(f"/v1/auth/wechat/callback?code=code-a&state={state}")
    assert once.status_code == 200, once.text


async def test_a_refused_code_is_401_and_a_silent_wechat_is_503(
    site: WeChatSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = await _state(site.client)
    refused = await site.client.get(f"/v1/auth/wechat/callback?code=unknown&state={state}")
    assert refused.status_code == 401
    assert "WeChat refused" in refused.json()["error"]["message"]
    monkeypatch.setattr(wechat, "SELDOM", Seldom())  # no line left out by an earlier test
    for mode in ("hang", "error500"):
        site.wechat.mode = mode
        state = await _state(site.client)
        with capture_logs() as lines:
            silent = await site.client.get(f"/v1/auth/wechat/callback?code=code-b&state={state}")
        assert silent.status_code == 503
        assert silent.headers["retry-after"] == "1"
        # WeChat's outage is said as WeChat's, not as a store of ours out of reach (an
        # operator paged for the database would look in the wrong place).
        events = [line["event"] for line in lines]
        assert "api.store_unreachable" not in events, lines
        assert events.count("wechat.unavailable") == (mode == "hang"), lines


async def test_wechat_login_is_404_when_not_configured(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/auth/wechat/authurl")).status_code == 404
