"""Readiness says what answers: an API process without OpenSearch stays in service (only
search needs it) and says search is degraded."""

from __future__ import annotations

import httpx

from tests.conftest import isolated, serve


async def test_ready_without_opensearch_says_search_is_degraded(run_id: str) -> None:
    async with (
        isolated(run_id, "noopensearch") as s,
        serve(s.model_copy(update={"opensearch_url": "http://127.0.0.1:9"})) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as client,
    ):
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["checks"] == {
            "kafka": True,
            "postgres": True,
            "redis": True,
            "opensearch": False,
        }
        assert body["degraded"] == ["opensearch"]
        search = await client.get("/v1/search/articles", params={"q": "x"})
        assert search.status_code == 503, search.text
        assert (await client.get("/v1/articles")).status_code == 200
