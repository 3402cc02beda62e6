"""The security log records a failed operator login and a reused refresh token with the
caller's address, and never the token that was tried."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from structlog.testing import capture_logs

from tests.e2e.test_sessions import account, login


async def test_a_failed_operator_login_is_logged_without_the_token(
    client: httpx.AsyncClient,
) -> None:
    guess = "not-the-operator-token-a7f3"
    with capture_logs() as lines:
        refused = await client.post(
            "/ops/session", json={"token": guess}, headers={"x-forwarded-for": "198.51.100.200"}
        )
    assert refused.status_code == 401
    security = [line for line in lines if line.get("security")]
    assert [(line["event"], line["ip"]) for line in security] == [
        ("ops.login_failed", "198.51.100.200")
    ]
    assert not [line for line in lines if guess in repr(line)]


async def test_a_reused_refresh_token_is_logged_without_the_token(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    first = await login(client, await account(client, unique_email))
    used = first["refresh_token"]
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": used})
    assert rotated.status_code == 200, rotated.text
    with capture_logs() as lines:
        reused = await client.post(
            "/v1/auth/refresh",
            json={"refresh_token": used},
            headers={"x-forwarded-for": "198.51.100.201"},
        )
    assert reused.status_code == 401
    security = [line for line in lines if line.get("security")]
    assert [(line["event"], line["ip"], line["user_id"]) for line in security] == [
        ("session.refresh_reused", "198.51.100.201", first["user"]["id"])
    ]
    assert not [line for line in lines if used in repr(line)]
