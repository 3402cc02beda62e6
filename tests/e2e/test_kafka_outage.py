"""With Kafka stopped a write fails fast and clearly, reads keep answering, and writes come
back when Kafka does."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.test_accounts import PASSWORD, signup_body

SERVICES = Path(__file__).resolve().parents[2] / "scripts" / "services"


def _services(action: str) -> None:
    subprocess.run([str(SERVICES), action, "kafka"], check=True, capture_output=True, timeout=180)


async def test_writes_fail_fast_with_503_and_reads_still_answer(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    auth = {"authorization": f"Bearer {login.json()['access_token']}"}

    await asyncio.to_thread(_services, "down")
    try:
        started = time.monotonic()
        refused = await client.post("/v1/users", json=signup_body(unique_email()))
        elapsed = time.monotonic() - started
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "unavailable"
        assert "nothing was recorded" in refused.json()["error"]["message"]
        assert elapsed < 2.0, f"the write must fail within 2 s, took {elapsed:.2f} s"

        me = await client.get("/v1/users/me", headers=auth)
        assert me.status_code == 200
        assert me.json()["user"]["email"] == email
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": False, "postgres": True, "redis": True}
    finally:
        await asyncio.to_thread(_services, "up")

    # The address refused during the outage is free again, and writes work once more.
    again = unique_email()
    for _ in range(100):
        answer = await client.post("/v1/users", json=signup_body(again))
        if answer.status_code != 503:
            break
        await asyncio.sleep(0.3)
    assert answer.status_code == 201, answer.text
