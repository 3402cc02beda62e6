"""Request rates per IP and per user (429 with Retry-After), and CORS from settings."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.e2e.test_sessions import account, bearer, login

ORIGIN = "https://app.example"


@contextlib.asynccontextmanager
async def limited_client(settings: Settings, **limits: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server started with ``limits``, from a loopback address of its own, so
    the rest of the suite's traffic from 127.0.0.1 does not count against its window."""
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{secrets.randbelow(200) + 20}")
    async with (
        serve(settings.model_copy(update=limits)) as live,
        httpx.AsyncClient(
            base_url=live.url,
            headers={"user-agent": "bloghub-tests/1"},
            timeout=10,
            transport=transport,
        ) as client,
    ):
        yield client


@pytest.fixture
async def strict(settings: Settings, live_api: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with limited_client(
        settings, rate_ip_per_minute=8, rate_user_per_minute=3, cors_origins=[ORIGIN]
    ) as client:
        yield client


async def test_per_user_then_per_ip_limits(
    strict: httpx.AsyncClient, client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    tokens = await login(client, await account(client, unique_email))
    me = [
        await strict.get("/v1/users/me", headers=bearer(tokens["access_token"])) for _ in range(4)
    ]
    assert [r.status_code for r in me] == [200, 200, 200, 429], [r.text for r in me]
    refused = me[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    answers = [await strict.get("/v1/users/not-a-user") for _ in range(6)]
    assert [r.status_code for r in answers].count(429) >= 1
    assert (await strict.get("/healthz")).status_code == 200, "health checks are not limited"


async def test_cors_allows_only_the_configured_origin(strict: httpx.AsyncClient) -> None:
    preflight = await strict.options(
        "/v1/auth/login",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    simple = await strict.get("/v1/tags", headers={"origin": ORIGIN})
    exposed = simple.headers["access-control-expose-headers"].lower()
    assert "x-jwt-token" in exposed
    assert "bloghub-position" in exposed
    assert "bloghub-ranking-version" in exposed  # a front end reads the ranking's version
    foreign = await strict.get("/v1/tags", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


async def test_the_operators_pages_are_shared_with_no_other_origin(
    strict: httpx.AsyncClient,
) -> None:
    """Even the allowed front end's origin: a script there must not read the dashboard or
    move a migration with the operator's cookie, which a same-site page sends."""
    preflight = await strict.options(
        "/ops/api/migrations/users/phase",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    for path in ("/ops/api/lag", "/ops", "/metrics", "/healthz"):
        answer = await strict.get(path, headers={"origin": ORIGIN})
        assert "access-control-allow-origin" not in answer.headers, path
        assert "access-control-allow-credentials" not in answer.headers, path
