"""The in-process cache tier of every API process follows the projectors: a changed entry
leaves every tier, a withdrawn article is served by none once the withdraw is projected."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bloghub.settings import Settings
from tests.conftest import LiveServer, serve
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_sessions import account, bearer, login

BOUND_S = 5.0  # far below the tier's TTL: only the change messages can explain a drop


@pytest.fixture
async def author(client: httpx.AsyncClient, unique_email: Callable[[], str]) -> Author:
    tokens = await login(client, await account(client, unique_email))
    return Author(tokens["user"]["id"], bearer(tokens["access_token"]))


@pytest.fixture
async def second(settings: Settings, live_api: LiveServer) -> AsyncIterator[LiveServer]:
    """Another API process's worth: its own container, tier and subscription."""
    async with serve(settings.model_copy(update={"local_cache_ttl_s": 3600.0})) as live:
        yield live


async def published(client: httpx.AsyncClient, who: Author, title: str) -> str:
    article_id = await draft(client, who, title=title)
    answer = await client.post(f"/v1/articles/{article_id}/publish", headers=who.auth)
    assert answer.status_code == 200, answer.text
    after = {"bloghub-after": answer.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{article_id}", headers=after)).status_code == 200
    return article_id


async def held_by_every_tier(servers: list[LiveServer], article_id: str) -> None:
    """Anonymous reads until each server's tier keeps the article's body."""
    for server in servers:
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            for _ in range(50):
                answer = await anonymous.get(f"/v1/articles/{article_id}")
                assert answer.status_code == 200, answer.text
                if server.container.hot.get(f"article:{article_id}") is not None:
                    break
            else:
                raise AssertionError(f"{server.url} never kept the article in its tier")


async def anonymous_read(server: LiveServer, article_id: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        return await anonymous.get(f"/v1/articles/{article_id}")


async def test_a_change_leaves_every_process_tier_within_a_bound(
    client: httpx.AsyncClient, live_api: LiveServer, second: LiveServer, author: Author
) -> None:
    article_id = await published(client, author, "First title")
    servers = [live_api, second]
    await held_by_every_tier(servers, article_id)

    edited = await client.put(
        f"/v1/articles/{article_id}",
        json={"title": "Second title", "content": "New text.", "tags": ["python"]},
        headers=author.auth,
    )
    assert edited.status_code == 200, edited.text
    republished = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert republished.status_code == 200, republished.text
    changed_at = time.monotonic()
    titles: dict[str, str] = {}
    while time.monotonic() - changed_at < BOUND_S:
        for server in servers:
            answer = await anonymous_read(server, article_id)
            titles[server.url] = answer.json()["article"]["title"]
        if set(titles.values()) == {"Second title"}:
            break
    assert set(titles.values()) == {"Second title"}, titles


async def test_a_withdrawn_article_is_served_by_no_tier_once_projected(
    client: httpx.AsyncClient, live_api: LiveServer, second: LiveServer, author: Author
) -> None:
    article_id = await published(client, author, "Soon gone")
    servers = [live_api, second]
    await held_by_every_tier(servers, article_id)

    withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=author.auth)
    assert withdrawn.status_code == 200, withdrawn.text
    after = {"bloghub-after": withdrawn.headers["bloghub-position"]}
    assert (await client.get(f"/v1/articles/{article_id}", headers=after)).status_code == 404
    # Projected: from here on, no process may answer from what its tier held.
    for server in servers:
        assert (await anonymous_read(server, article_id)).status_code == 404, server.url
        assert server.container.hot.get(f"article:{article_id}") is None
