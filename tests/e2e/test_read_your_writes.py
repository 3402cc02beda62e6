"""Read-your-writes: a reader names a position and waits for it, bounded; projectors show
they are alive."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.settings import Settings
from tests.conftest import LiveServer
from tests.e2e.test_accounts import PASSWORD, signup_body


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    assert (await client.post("/v1/users", json=signup_body(email))).status_code == 201
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"authorization": f"Bearer {login.json()['access_token']}"}


async def test_a_made_up_position_is_refused_at_once(
    client: httpx.AsyncClient, settings: Settings, unique_email: Callable[[], str]
) -> None:
    """Only positions this service issued are waited for: a made-up one (unsigned, or a
    real token's seal on another position) would otherwise hold the read for the whole
    bound, polling the database."""
    auth = await _login(client, unique_email())
    ahead = Position({(topic_for(settings.prefix, Family.USERS), 0): 10**9}).encode()
    created = await client.post("/v1/users", json=signup_body(unique_email()))
    _, _, seal = created.headers["bloghub-position"].partition(".")
    for token in (ahead, f"{ahead}.{seal}"):
        for path, headers in (("/v1/articles", {}), ("/v1/users/me", auth)):
            answer = await client.get(path, headers={**headers, "bloghub-after": token})
            assert answer.status_code == 400, (path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "malformed_request"
            assert "Bloghub-After" in error["message"]


async def test_a_signed_position_beyond_the_end_of_the_log_is_refused(
    client: httpx.AsyncClient, live_api: LiveServer, settings: Settings
) -> None:
    """As a token issued before the log was rebuilt would be."""
    ahead = Position({(topic_for(settings.prefix, Family.USERS), 0): 10**9})
    token = live_api.container.positions.seal(ahead)
    answer = await client.get("/v1/articles", headers={"bloghub-after": token})
    assert answer.status_code == 400
    assert "end of the log" in answer.json()["error"]["message"]


async def test_a_reached_position_is_not_stale(
    client: httpx.AsyncClient, unique_email: Callable[[], str]
) -> None:
    email = unique_email()
    created = await client.post("/v1/users", json=signup_body(email))
    login = await client.post(
        "/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"bloghub-after": created.headers["bloghub-position"]},
    )
    auth = {"authorization": f"Bearer {login.json()['access_token']}"}
    me = await client.get(
        "/v1/users/me", headers={**auth, "bloghub-after": created.headers["bloghub-position"]}
    )
    assert me.status_code == 200
    assert "bloghub-stale" not in me.headers


async def test_ready_when_every_service_answers(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"kafka": True, "postgres": True, "redis": True, "opensearch": True},
        "degraded": [],
        "waiting": [],
    }
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_running_projectors_keep_a_heartbeat(
    live_api: LiveServer, settings: Settings
) -> None:
    redis = live_api.container.redis
    keys = [k async for k in redis.scan_iter(match=f"{settings.prefix}:hb:users:*")]
    assert len(keys) == 1
    beat = await redis.get(keys[0])
    assert beat is not None
    info = orjson.loads(beat)
    assert (info["projector"], info["generation"]) == ("users", 1)
    assert 0 < await redis.ttl(keys[0]) <= settings.heartbeat_ttl_s
