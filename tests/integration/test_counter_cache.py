"""The Redis counter hashes are a cache the interactions projector owns: flushed while
likes keep coming, the counts readers see come back exact (refilled from the read model
on a miss, rewritten by the projector on the next change)."""

from __future__ import annotations

import asyncio
import random

import httpx
from redis.asyncio import Redis

from bloghub.events.articles import ArticleDrafted
from bloghub.events.base import Event
from bloghub.events.log import EventLog
from tests.conftest import isolated, projecting, serve
from tests.integration.test_interaction_kills import Load
from tests.private_redis import private_redis
from tests.support import append_events, applied, wait_until


def drafted(load: Load) -> list[Event]:
    return [
        ArticleDrafted(
            article_id=a, author_id=load.author, version=1, title="t", content="", tags=[]
        )
        for a in load.articles
    ]


async def _seen(client: httpx.AsyncClient, load: Load) -> dict[str, tuple[int, int]]:
    out = {}
    for article_id in load.articles:
        body = (await client.get(f"/v1/articles/{article_id}")).json()["article"]
        out[article_id] = (body["like_cnt"], body["collect_cnt"])
    return out


async def test_counts_come_back_exact_after_redis_is_flushed_under_load(run_id: str) -> None:
    async with (
        private_redis() as server,
        isolated(run_id, "ixflush", redis_url=server.url) as settings,
    ):
        load = Load(random.Random(run_id))
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        try:
            await append_events(log, [*drafted(load), *load.published()])
            async with (
                projecting(settings, "articles", "interactions"),
                serve(settings) as live,
                httpx.AsyncClient(base_url=live.url, timeout=10) as client,
            ):

                async def readable() -> bool:
                    for article_id in load.articles:
                        answer = await client.get(f"/v1/articles/{article_id}")
                        if answer.status_code != 200:
                            return False
                    return True

                await wait_until(readable, timeout_s=60)
                await _flush_under_load(load, log, client, server.client())
                total = 2 * len(load.articles) + load.sent

                async def caught_up() -> bool:
                    return await applied(settings, "interactions") >= total

                await wait_until(caught_up, timeout_s=90)

                async def exact() -> bool:
                    return await _seen(client, load) == load.expected()

                await wait_until(exact, timeout_s=30)
                assert await _seen(client, load) == load.expected()
        finally:
            await log.close()


async def _flush_under_load(
    load: Load, log: EventLog, client: httpx.AsyncClient, redis: Redis
) -> None:
    """Likes keep coming and readers keep reading; Redis loses everything halfway."""
    for round_ in range(20):
        await append_events(log, load.chunk())
        await _seen(client, load)
        if round_ == 10:
            await redis.flushall()
        await asyncio.sleep(0.05)
    await redis.aclose()
