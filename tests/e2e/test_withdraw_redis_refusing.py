"""A withdraw projected while Redis refuses writes for a moment (out of memory, on a Redis of
the test's own): the projector waits rather than commit a change whose cache entry it
could not fence, then applies the withdraw once Redis takes writes again; from then on no
tier of any API process, nor the Redis cache, serves the article."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from bloghub.adapters.redis.cache import FENCE
from bloghub.readmodels import published_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, isolated, pg, projecting, serve
from tests.e2e.test_articles import Author
from tests.e2e.test_local_tier import anonymous_read, held_by_every_tier, published
from tests.e2e.test_projector_lag import logged_in
from tests.faults import dead_lettered, out_of_memory
from tests.private_redis import private_redis
from tests.support import once_caught_up, wait_until

UA = {"user-agent": "bloghub-tests/1"}
REFUSING_S = 2.0  # long past the projector's first tries (it polls every few tens of ms)


async def status_in_read_model(settings: Settings, article_id: str) -> str:
    async with pg(settings) as conn:
        found: str = await conn.fetchval(
            "SELECT status FROM articles_g1.articles WHERE id = $1", article_id
        )
        return found


@contextlib.asynccontextmanager
async def two_processes(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, list[LiveServer]]]:
    async with (
        serve(settings) as first,
        serve(settings) as second,
        httpx.AsyncClient(base_url=first.url, headers=UA, timeout=10) as client,
    ):
        yield client, [first, second]


async def test_a_withdraw_while_redis_refuses_writes_is_served_by_no_tier(run_id: str) -> None:
    async with (
        private_redis() as own_redis,
        isolated(run_id, "fence_oom", redis_url=own_redis.url, local_cache_ttl_s=3600.0) as s,
        projecting(s, "users", "articles", "comments", "interactions"),
        two_processes(s) as (client, servers),
    ):
        admin = own_redis.client()
        try:
            user_id, auth = await logged_in(client, f"fence-oom-{run_id}@example.com")
            article_id = await published(client, Author(user_id, auth), "Soon gone")
            await held_by_every_tier(servers, article_id)
            key = published_key(servers[0].container.cache, article_id)
            cached = await admin.get(key)  # in the Redis cache too
            assert isinstance(cached, bytes)
            assert cached.startswith(b"{")

            async with out_of_memory(admin):
                withdrawn = await client.post(f"/v1/articles/{article_id}/withdraw", headers=auth)
                assert withdrawn.status_code == 200, withdrawn.text
                await asyncio.sleep(REFUSING_S)
                # Nothing committed while the cache entry could not be fenced.
                assert await status_in_read_model(s, article_id) == "published"

            async def projected() -> bool:
                return await status_in_read_model(s, article_id) == "withdrawn"

            await wait_until(projected, timeout_s=30)  # the withdraw was not passed over
            after = {"bloghub-after": withdrawn.headers["bloghub-position"]}
            # A read that cannot yet confirm the withdraw is applied is asked to come back
            # (503), never shown the article: retried as a client told to retry does.
            answer = await once_caught_up(
                lambda: client.get(f"/v1/articles/{article_id}", headers=after)
            )
            assert answer.status_code == 404, answer.text
            for server in servers:
                for _ in range(3):
                    assert (await anonymous_read(server, article_id)).status_code == 404
                assert server.container.hot.get(f"article:{article_id}") is None
            assert await admin.get(key) in (None, FENCE)
            assert await dead_lettered(admin, s.prefix, "articles") == 0
        finally:
            await admin.aclose()
