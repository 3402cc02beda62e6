"""Read-your-writes: a reader names a position and waits for it, bounded; projectors show
they are alive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import orjson
import pytest

from bloghub.adapters.search_indexes import ARTICLES, index_name
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.settings import Settings
from tests.conftest import LiveServer
from tests.e2e.test_accounts import PASSWORD, signup_body
from tests.e2e.test_articles import Author
from tests.e2e.test_search import publish_at, word
from tests.e2e.test_sessions import account, bearer, login


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


@pytest.fixture
async def writer(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


async def index_refreshes(live_api: LiveServer) -> int:
    """How many times the article index was refreshed so far (by anyone, OpenSearch's own
    periodic refreshes included): each refresh costs every reader of the index."""
    c = live_api.container
    index = index_name(c.settings.prefix, ARTICLES, 1)
    stats = await c.search.indices.stats(index=index, metric="refresh")
    return int(stats["indices"][index]["primaries"]["refresh"]["external_total"])


async def found_with(client: httpx.AsyncClient, q: str, headers: dict[str, str]) -> list[str]:
    answer = await client.get("/v1/search/articles", params={"q": q}, headers=headers)
    assert answer.status_code == 200, answer.text
    return [a["id"] for a in answer.json()["articles"]]


async def test_searches_naming_a_position_the_index_shows_cost_no_refresh(
    client: httpx.AsyncClient, writer: Author, live_api: LiveServer
) -> None:
    """A link shared with the position of a publish: every reader who follows it finds the
    article, and once the index shows it nobody makes the index refresh again for it."""
    marker = word()
    article_id, after = await publish_at(client, writer, title=f"{marker} shared", content="x")
    assert await found_with(client, marker, after) == [article_id]
    before = await index_refreshes(live_api)
    for _ in range(20):
        assert await found_with(client, marker, after) == [article_id]
    # At most one of OpenSearch's own refreshes, should a write of an earlier test land.
    assert await index_refreshes(live_api) - before <= 1


async def test_readers_waiting_for_one_publish_share_a_refresh(
    client: httpx.AsyncClient, writer: Author, live_api: LiveServer
) -> None:
    """Twenty readers ask for a publish at the same moment: each finds it at once, and the
    index is refreshed for them once, not twenty times."""
    marker = word()
    before = await index_refreshes(live_api)
    article_id, after = await publish_at(client, writer, title=f"{marker} news", content="x")
    found = await asyncio.gather(*(found_with(client, marker, after) for _ in range(20)))
    assert found == [[article_id]] * 20
    # One for the readers, and OpenSearch's own after the write, or two.
    assert await index_refreshes(live_api) - before <= 3
