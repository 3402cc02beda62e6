"""A live socket lasts as long as the access token it was opened with, unless the client
sends a fresh one of the same session before it ends: a leaked token's socket does not
outlive the token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest

from bloghub.auth.tokens import TokenService
from tests.conftest import isolated, projecting, serve
from tests.e2e.test_live import UA, Api, closed_with, follow, next_of, socket, user

SHORT_S = 2


@dataclass(frozen=True)
class Site:
    api: Api
    tokens: TokenService


@pytest.fixture(scope="module")
async def site(run_id: str) -> AsyncIterator[Site]:
    async with (
        isolated(run_id, "livetok", live_ping_interval_s=1.0) as s,
        projecting(s, "users", "social", "notifications"),
        serve(s) as live,
        httpx.AsyncClient(base_url=live.url, headers={"user-agent": UA}, timeout=10) as client,
    ):
        yield Site(Api(live.url, client), live.container.tokens)


def short_lived(site: Site, token: str) -> str:
    """An access token of the same session as ``token`` that ends in ``SHORT_S``."""
    claims = site.tokens.verify("access", token, UA)
    pair = site.tokens.issue(
        claims.user_id,
        UA,
        session_id=claims.session_id,
        started_at=claims.session_started_at,
        access_ttl_s=SHORT_S,
    )
    return pair.access


async def test_a_socket_ends_with_its_token(site: Site) -> None:
    _, token = await user(site.api)
    async with socket(site.api, short_lived(site, token)) as ws:
        await next_of(ws, "ready")
        assert await closed_with(ws, within_s=SHORT_S + 5) == 4401
        assert "token expired" in (ws.close_reason or "")


async def test_a_fresh_token_of_the_session_keeps_the_socket(site: Site) -> None:
    me, token = await user(site.api)
    fan, fan_token = await user(site.api)
    async with socket(site.api, short_lived(site, token)) as ws:
        await next_of(ws, "ready")
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        with contextlib.suppress(TimeoutError):  # past the short token's end, pings answered
            await next_of(ws, "nothing of this kind", within_s=SHORT_S + 1)
        await follow(site.api, fan_token, me)
        pushed = await next_of(ws, "notification")
        assert (pushed["notification"]["kind"], pushed["notification"]["actor_id"]) == (
            "follower",
            fan,
        )


async def test_a_fresh_token_of_another_session_ends_the_socket(site: Site) -> None:
    _, token = await user(site.api)
    _, stranger = await user(site.api)
    async with socket(site.api, token) as ws:
        await next_of(ws, "ready")
        await ws.send(orjson.dumps({"type": "auth", "token": stranger}).decode())
        assert await closed_with(ws) == 4401
        assert "token expired" not in (ws.close_reason or "")
