"""The security log records a failed operator login with the caller's address, and never
the token that was tried."""

from __future__ import annotations

import httpx
from structlog.testing import capture_logs


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
