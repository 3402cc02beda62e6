"""OpenSearch really down: a private node (tests/opensearch_node.py, one for the module)
is stopped while articles are published through the API, then started again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bloghub.adapters.search_indexes import ARTICLES, index_name
from tests.conftest import isolated, projecting, serve
from tests.e2e.test_articles import Author, draft
from tests.e2e.test_sessions import account, bearer, login
from tests.opensearch_node import PrivateNode
from tests.support import wait_until

ARTICLE_COUNT = 100
# Once the node answers again, every article published meanwhile is found within this.
CATCH_UP_S = 30


@pytest.fixture(scope="module")
async def node() -> AsyncIterator[PrivateNode]:
    node = PrivateNode.prepare()
    try:
        node.start()
        await node.healthy()
        yield node
    finally:
        node.remove()


async def publish(client: httpx.AsyncClient, author: Author, n: int) -> str:
    article_id = await draft(client, author, title=f"停机 outage {n}", tags=["outage"])
    done = await client.post(f"/v1/articles/{article_id}/publish", headers=author.auth)
    assert done.status_code == 200, done.text
    return article_id


async def found(client: httpx.AsyncClient) -> tuple[int, list[str]] | None:
    """The total the search reports for the articles' shared word, and every id its pages
    list (anonymous: no wait for a writer's own position); None while search answers 503
    (the node's shards may still be recovering)."""
    ids: list[str] = []
    params: dict[str, Any] = {"q": "停机 outage", "tag": "outage", "limit": 50}
    while True:
        answer = await client.get("/v1/search/articles", params=params)
        if answer.status_code == 503:
            return None
        assert answer.status_code == 200, answer.text
        body = answer.json()
        ids += [a["id"] for a in body["articles"]]
        if body["next_cursor"] is None:
            return body["total"], ids
        params["cursor"] = body["next_cursor"]


async def test_opensearch_stopped_then_started_finds_every_article_once(
    run_id: str, unique_email: Callable[[], str], node: PrivateNode
) -> None:
    async with (
        isolated(run_id, "srch_stop", opensearch_url=node.url) as settings,
        projecting(settings, "users", "articles", ARTICLES),
        serve(settings) as live,
        httpx.AsyncClient(base_url=live.url, timeout=30) as client,
        httpx.AsyncClient(base_url=live.url, timeout=30) as reader,
    ):
        tokens = await login(client, await account(client, unique_email))
        author = Author(tokens["user"]["id"], bearer(tokens["access_token"]))
        index = index_name(settings.prefix, ARTICLES, 1)

        async def index_made() -> bool:
            async with httpx.AsyncClient(base_url=node.url) as direct:
                return (await direct.head(f"/{index}")).status_code == 200

        await wait_until(index_made, timeout_s=60)
        await asyncio.to_thread(node.stop)

        published: list[str] = []
        for start in range(0, ARTICLE_COUNT, 10):
            batch = range(start, min(start + 10, ARTICLE_COUNT))
            published += await asyncio.gather(*(publish(client, author, n) for n in batch))
        answer = await reader.get("/v1/search/articles", params={"q": "outage"})
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert answer.json()["error"]["code"] == "search_unavailable"

        node.start()
        await node.healthy()

        async def all_found() -> bool:
            result = await found(reader)
            return result is not None and result[0] >= ARTICLE_COUNT

        await wait_until(all_found, timeout_s=CATCH_UP_S)
        result = await found(reader)
        assert result is not None
        total, ids = result
        assert total == ARTICLE_COUNT
        assert sorted(ids) == sorted(published), "each article once"
