"""An OpenSearch that takes a search and never answers (not one that refuses: that is a
503 at once): the API gives up on each request after one wait, not three, and answers 503
``search_unavailable`` to retry; writes go on. The cluster is hung through a proxy of the
test's own (the shared node is never touched)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx

from bloghub.bootstrap import SEARCH_TIMEOUT_S
from tests.conftest import isolated, serve
from tests.e2e.test_accounts import signup_body
from tests.tcp_proxy import proxied


async def test_a_hung_search_cluster_is_a_503_after_one_wait(run_id: str) -> None:
    async with isolated(run_id, "oshang") as plain:
        node = urlsplit(plain.opensearch_url)
        async with proxied(node.hostname or "127.0.0.1", node.port or 9200) as proxy:
            hung = plain.model_copy(
                update={"opensearch_url": f"{node.scheme}://127.0.0.1:{proxy.port}"}
            )
            async with (
                serve(hung) as live,
                httpx.AsyncClient(
                    base_url=live.url, headers={"user-agent": "t/1"}, timeout=60
                ) as c,
            ):
                assert (await c.get("/v1/search/articles", params={"q": "warm"})).is_success
                proxy.hang()
                started = time.monotonic()
                answer = await c.get("/v1/search/articles", params={"q": "hello"})
                took = time.monotonic() - started
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "search_unavailable"
                assert answer.headers["retry-after"] == "5"
                # One wait per request to the cluster (a search makes at most a few), not
                # three: before, this took 30 s and more.
                assert took < 3 * SEARCH_TIMEOUT_S, took
                made = await c.post("/v1/users", json=signup_body(f"os-{run_id}@example.com"))
                assert made.status_code == 201, made.text
