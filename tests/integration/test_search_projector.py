"""The search projector against the real OpenSearch: an outage of its index, a kill in
the middle of a batch, two instances writing the same documents at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opensearchpy import AsyncOpenSearch

from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.search_indexes import ARTICLES, index_name
from bloghub.events.articles import ArticlePublished
from bloghub.events.base import Event, Recorded
from bloghub.events.log import EventLog
from bloghub.ids import new_id_str
from bloghub.projections.search import ArticleSearchProjector
from bloghub.settings import Settings
from tests.conftest import isolated, projecting, serve
from tests.support import append_events, applied, projector_process, recorded, wait_until


@pytest.fixture
async def search(settings: Settings) -> AsyncIterator[AsyncOpenSearch]:
    client = make_opensearch(settings.opensearch_url)
    yield client
    await client.close()


def published(article_id: str, version: int, title: str, author: str | None = None) -> Event:
    return ArticlePublished(
        article_id=article_id,
        author_id=author or new_id_str(),
        version=version,
        title=title,
        content="数据迁移 and migrations",
        tags=["bulk"],
    )


async def append(settings: Settings, events: list[Event]) -> None:
    log = EventLog.from_settings(settings, timeout_s=10)
    await log.start()
    try:
        await append_events(log, events)
    finally:
        await log.close()


async def all_docs(search: AsyncOpenSearch, index: str) -> dict[str, dict[str, Any]]:
    """Every document of the index as a search sees it, by id (with its version)."""
    await search.indices.refresh(index=index)
    found = await search.search(
        index=index, body={"size": 10_000, "version": True, "query": {"match_all": {}}}
    )
    return {h["_id"]: {**h["_source"], "_version": h["_version"]} for h in found["hits"]["hits"]}


async def published_hits(search: AsyncOpenSearch, index: str) -> list[str]:
    await search.indices.refresh(index=index)
    body = {"size": 1000, "query": {"bool": {"filter": [{"term": {"state": "published"}}]}}}
    found = await search.search(index=index, body=body)
    return [h["_id"] for h in found["hits"]["hits"]]


async def index_exists(search: AsyncOpenSearch, index: str) -> None:
    async def made() -> bool:
        return bool(await search.indices.exists(index=index))

    await wait_until(made, timeout_s=30)


async def test_an_index_outage_delays_documents_then_all_arrive_once(
    run_id: str, search: AsyncOpenSearch
) -> None:
    # A node that answers but refuses writes (a write block on this test's own index, a
    # cluster block the adapter reads as the store being unwell); a node that is stopped
    # altogether is test_search_outage.py's.
    async with isolated(run_id, "srch_outage") as settings, projecting(settings, ARTICLES):
        index = index_name(settings.prefix, ARTICLES, 1)
        await index_exists(search, index)
        await search.indices.put_settings(index=index, body={"index.blocks.write": True})
        try:
            ids = [new_id_str() for _ in range(100)]
            await append(settings, [published(i, 2, f"outage {n}") for n, i in enumerate(ids)])
            await asyncio.sleep(2)  # let the projector try, and fail, to write them
            assert await applied(settings, ARTICLES) == 0, "no checkpoint passes a failed write"
            assert await published_hits(search, index) == []
        finally:
            await search.indices.put_settings(index=index, body={"index.blocks.write": False})

        async def all_there() -> bool:
            return len(await published_hits(search, index)) == 100

        await wait_until(all_there, timeout_s=30)
        hits = await published_hits(search, index)
        assert sorted(hits) == sorted(ids), "each of the 100 once"


async def test_search_answers_503_while_writes_go_on(
    run_id: str, unique_email: Any, search: AsyncOpenSearch
) -> None:
    async with (
        isolated(run_id, "srch_down") as settings,
        projecting(settings, "users", "articles"),
    ):
        down = settings.model_copy(update={"opensearch_url": "http://127.0.0.1:9"})
        async with serve(down) as live, httpx.AsyncClient(base_url=live.url) as client:
            from tests.e2e.test_sessions import account, bearer, login

            tokens = await login(client, await account(client, unique_email))
            auth = bearer(tokens["access_token"])
            made = await client.post("/v1/articles", json={"title": "写入照常"}, headers=auth)
            assert made.status_code == 201, made.text
            article_id = made.json()["article"]["id"]
            done = await client.post(f"/v1/articles/{article_id}/publish", headers=auth)
            assert done.status_code == 200, done.text
            for path in ("/v1/search/articles", "/v1/search/users"):
                answer = await client.get(path, params={"q": "写入"})
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "5"
                assert answer.json()["error"]["code"] == "search_unavailable"
        # OpenSearch back: the index catches up from the log.
        async with projecting(settings, ARTICLES):
            index = index_name(settings.prefix, ARTICLES, 1)

            async def caught_up() -> bool:
                return await search.indices.exists(index=index) and (
                    await published_hits(search, index) == [article_id]
                )

            await wait_until(caught_up, timeout_s=30)


async def test_a_kill_mid_batch_never_takes_a_document_back(
    run_id: str, tmp_path: Path, search: AsyncOpenSearch
) -> None:
    articles, rounds = 300, 10
    async with isolated(run_id, "srch_kill") as settings:
        ids = [new_id_str() for _ in range(articles)]
        # Every article published again and again: version v carries title "v<v>".
        events: list[Event] = [
            published(article_id, v, f"v{v}") for v in range(2, 2 + rounds) for article_id in ids
        ]
        await append(settings, events)
        index = index_name(settings.prefix, ARTICLES, 1)
        first = projector_process(settings, ARTICLES, log_file=tmp_path / "p.log", batch=200)

        async def started() -> bool:
            return await applied(settings, ARTICLES) > len(events) // 4

        await wait_until(started, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = await applied(settings, ARTICLES)
        assert 0 < at_kill < len(events), "the kill must land while events remain"
        before = await all_docs(search, index)

        second = projector_process(settings, ARTICLES, log_file=tmp_path / "p.log")
        snapshots = [before]
        try:

            async def finished() -> bool:
                snapshots.append(await all_docs(search, index))
                return await applied(settings, ARTICLES) >= len(events)

            await wait_until(finished, timeout_s=120)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
        final = await all_docs(search, index)
        snapshots.append(final)
        for article_id in ids:
            seen = [s[article_id]["_version"] for s in snapshots if article_id in s]
            assert seen == sorted(seen), f"{article_id} went back: {seen}"
            titles = [int(s[article_id]["title"][1:]) for s in snapshots if article_id in s]
            assert titles == sorted(titles)
        assert {d["title"] for d in final.values()} == {f"v{rounds + 1}"}
        assert len(final) == articles


async def test_lanes_writing_one_document_at_once_lose_nothing(
    settings: Settings, search: AsyncOpenSearch
) -> None:
    """Two instances writing the same documents at once (a zombie and its successor): their
    writes race, and whichever lands last, each document ends at its newest version."""
    engine = make_engine(settings.sqlalchemy_url, pool_size=2)
    prefix = f"{settings.prefix}-lanes"
    one = ArticleSearchProjector(search, engine, prefix=prefix)
    two = ArticleSearchProjector(search, engine, prefix=prefix)
    await one.ensure_index(serve=True)
    ids, author = [new_id_str() for _ in range(50)], new_id_str()
    articles = f"{prefix}.articles"

    def round_of(version: int) -> list[Recorded]:
        # Each instance on its own partition, so neither's checkpoint hides the other's
        # records: both writes reach OpenSearch, which alone decides between them.
        base = version * len(ids)
        return [
            recorded(
                published(i, version, f"r{version}", author),
                topic=articles,
                partition=version % 2,
                offset=base + n,
            )
            for n, i in enumerate(ids)
        ]

    try:
        for version in range(2, 12, 2):
            # The newer version goes first as often as the older one.
            newer, older = round_of(version + 1), round_of(version)
            end = (version + 2) * len(ids)
            await asyncio.gather(
                one.apply(newer, {(articles, 1): end}),
                two.apply(older, {(articles, 0): end}),
            )
        docs = await all_docs(search, one.index)
        assert {(d["title"], d["v"]) for d in docs.values()} == {("r11", 11)}
        assert len(docs) == len(ids)
    finally:
        await search.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)
        await engine.dispose()
