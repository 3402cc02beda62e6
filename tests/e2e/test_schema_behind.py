"""Code ahead of its database (a deployment that started before `bloghub db upgrade` ran):
reads answer 503 to come back, naming no table or column, on /v1 and /api alike; the
operators find what is missing in the log."""

from __future__ import annotations

import asyncpg
import httpx

from tests.conftest import isolated, serve


async def test_a_schema_behind_the_code_is_a_503_that_names_nothing_inside(run_id: str) -> None:
    async with isolated(run_id, "behind") as s, serve(s) as live:
        conn = await asyncpg.connect(s.asyncpg_dsn)
        try:
            await conn.execute("ALTER TABLE articles_g1.articles DROP COLUMN published_updated_at")
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
            v1 = await client.get("/v1/articles")
            conduit = await client.get("/api/articles")
        assert v1.status_code == 503, v1.text
        assert v1.json()["error"]["code"] == "schema_behind"
        assert int(v1.headers["retry-after"]) > 0
        assert conduit.status_code == 503, conduit.text
        assert int(conduit.headers["retry-after"]) > 0
        for answer in (v1, conduit):
            assert "published_updated_at" not in answer.text
            assert "articles" not in answer.text.replace("/api/articles", "")
