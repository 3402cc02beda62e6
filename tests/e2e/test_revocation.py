"""Sessions end when their command runs, whatever the projectors' lag, and a used refresh
token stays used: on the real services, with the projectors stopped or the sweeper busy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.commands.sweeper import sweep_forever
from bloghub.settings import Settings
from tests.conftest import isolated, projecting, serve
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_projector_lag import login_once_projected
from tests.e2e.test_sessions import bearer, login
from tests.private_redis import private_redis

UA = {"user-agent": "bloghub-tests/1"}


@dataclass(frozen=True)
class Site:
    settings: Settings
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def site(run_id: str, name: str, **overrides: object) -> AsyncIterator[Site]:
    """A database, prefix and API of its own; projectors run only where a test says."""
    async with (
        isolated(run_id, name, read_wait_s=0.3, **overrides) as own,
        serve(own) as live,
        httpx.AsyncClient(base_url=live.url, headers=UA, timeout=10) as client,
    ):
        yield Site(own, client)


async def signed_up(at: Site, email: str) -> dict[str, Any]:
    """An account, projected, and its first token pair."""
    assert (await at.client.post("/v1/users", json=signup_body(email))).status_code == 201
    answer = await login_once_projected(at.client, email)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def refreshed(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def write(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    body = {"title": "After the end", "content": "text", "tags": []}
    return await client.post("/v1/articles", json=body, headers=bearer(access_token))


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/v1/users/me", headers=bearer(access_token))


async def assert_ended(client: httpx.AsyncClient, tokens: dict[str, Any]) -> None:
    """Neither token of the pair does anything any more: no read, no write, no refresh."""
    assert (await me(client, tokens["access_token"])).status_code == 401
    assert (await write(client, tokens["access_token"])).status_code == 401
    assert (await refreshed(client, tokens["refresh_token"])).status_code == 401


async def test_a_used_refresh_token_stays_used_after_the_sweeper_runs(run_id: str) -> None:
    async with (
        site(
            run_id,
            "reuse_swept",
            append_timeout_s=1.0,
            delivery_timeout_s=2.0,
            reservation_ttl_s=12,
            sweep_interval_s=0.2,
        ) as at,
        projecting(at.settings, "users"),
    ):
        engine = make_engine(at.settings.sqlalchemy_url, pool_size=1)
        stop = asyncio.Event()
        sweeper = asyncio.create_task(
            sweep_forever(
                Reservations(engine),
                older_than_s=at.settings.reservation_ttl_s,
                every_s=at.settings.sweep_interval_s,
                stop=stop,
            )
        )
        try:
            first = await signed_up(at, f"swept-{run_id}@example.com")
            rotated = await refreshed(at.client, first["refresh_token"])
            assert rotated.status_code == 200, rotated.text
            # Past the reservation TTL, with the sweeper running many times over.
            await asyncio.sleep(at.settings.reservation_ttl_s + 10 * at.settings.sweep_interval_s)
            replay = await refreshed(at.client, first["refresh_token"])
            assert replay.status_code == 401
            assert "already used" in replay.json()["error"]["message"]
            await assert_ended(at.client, rotated.json())
        finally:
            stop.set()
            await sweeper
            await engine.dispose()


async def test_sessions_end_at_once_while_the_projectors_are_stopped(run_id: str) -> None:
    async with site(run_id, "revoke_paused") as at:
        email = f"paused-{run_id}@example.com"
        async with projecting(at.settings, "users"):
            out = await signed_up(at, email)
            changer, other, thief = [await login(at.client, email) for _ in range(3)]
        # No projector runs from here on: every ending below is in the log only.
        assert (await me(at.client, out["access_token"])).status_code == 200

        assert (
            await at.client.post("/v1/auth/logout", headers=bearer(out["access_token"]))
        ).status_code == 204
        await assert_ended(at.client, out)

        stolen = await refreshed(at.client, thief["refresh_token"])
        assert stolen.status_code == 200, stolen.text
        replay = await refreshed(at.client, thief["refresh_token"])
        assert replay.status_code == 401
        await assert_ended(at.client, stolen.json())

        changed = await at.client.post(
            "/v1/users/me/password",
            json={
                "current_password": PASSWORD,
                "new_password": "N3w-password!",
                "confirm_password": "N3w-password!",
            },
            headers=bearer(changer["access_token"]),
        )
        assert changed.status_code == 204, changed.text
        await assert_ended(at.client, other)
        # The session that changed the password goes on.
        assert (await write(at.client, changer["access_token"])).status_code == 201


async def test_without_the_session_store_requests_are_refused_not_let_through(
    run_id: str, tmp_path: Path
) -> None:
    async with (
        private_redis() as own_redis,
        site(run_id, "store_down", redis_url=own_redis.url) as at,
    ):
        async with projecting(at.settings, "users"):
            tokens = await signed_up(at, f"down-{run_id}@example.com")
        assert (await me(at.client, tokens["access_token"])).status_code == 200
        await own_redis.stop()
        login = {"email": f"down-{run_id}@example.com", "password": PASSWORD}
        for answer in (
            await write(at.client, tokens["access_token"]),
            await me(at.client, tokens["access_token"]),
            # A login too: a 503 to retry (with when), not a server error.
            await at.client.post("/v1/auth/login", json=login),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "unavailable"
            assert answer.headers["retry-after"] == "1"


def _payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


async def test_refresh_never_carries_a_session_past_its_absolute_end(run_id: str) -> None:
    async with (
        site(run_id, "lifetime", session_lifetime_s=300) as at,
        projecting(at.settings, "users"),
    ):
        tokens = await signed_up(at, f"lifetime-{run_id}@example.com")
        started = _payload(tokens["access_token"])["auth_time"]
        assert tokens["expires_in"] <= 300
        for _ in range(3):
            answer = await refreshed(at.client, tokens["refresh_token"])
            assert answer.status_code == 200, answer.text
            tokens = answer.json()
            for kind in ("access_token", "refresh_token"):
                claims = _payload(tokens[kind])
                assert claims["auth_time"] == started
                assert claims["exp"] <= started + 300
                assert (claims["iss"], claims["aud"]) == ("bloghub", "bloghub-api")
