"""Article search documents against the real OpenSearch: an article's state is applied
past the version the document holds by OpenSearch itself, so an older batch delivered
again, or a zombie instance writing what it folded long ago, brings back neither old text
nor a withdrawn or deleted article."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from opensearchpy import AsyncOpenSearch
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.search_indexes import ARTICLES, ARTICLES_BODY, index_name
from bloghub.events.articles import ArticleDeleted, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Event, Recorded
from bloghub.ids import new_id_str
from bloghub.projections.search import ArticleSearchProjector, empty_article, fold_article
from bloghub.settings import Settings
from tests.conftest import isolated, projecting
from tests.integration.test_search_projector import append
from tests.support import recorded, until_applied
from tests.unit.test_search_fold import ARTICLE, deliveries

ARTICLES_TOPIC = "p.articles"


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(settings.sqlalchemy_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def search(settings: Settings) -> AsyncIterator[AsyncOpenSearch]:
    client = make_opensearch(settings.opensearch_url)
    yield client
    await client.close()


@pytest.fixture
def prefix(settings: Settings) -> str:
    """A prefix of this test's own, so its index is its own."""
    return f"{settings.prefix}-v{new_id_str()[-8:]}"


@pytest.fixture
async def writer(
    prefix: str, search: AsyncOpenSearch, engine: AsyncEngine
) -> AsyncIterator[ArticleSearchProjector]:
    projector = ArticleSearchProjector(search, engine, prefix=prefix)
    await projector.ensure_index(serve=True)
    yield projector
    await search.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)


def publish(article_id: str, author: str, version: int, title: str) -> Event:
    return ArticlePublished(
        article_id=article_id,
        author_id=author,
        version=version,
        title=title,
        content=f"{title} 数据迁移",
        tags=["t"],
    )


def at(event: Event, offset: int) -> Recorded:
    return recorded(event, topic=ARTICLES_TOPIC, partition=0, offset=offset)


async def stored(search: AsyncOpenSearch, index: str, doc_id: str) -> tuple[dict[str, Any], int]:
    """The document as a realtime get sees it, and OpenSearch's version of it."""
    got = await search.get(index=index, id=doc_id)
    return got["_source"], got["_version"]


async def found(search: AsyncOpenSearch, index: str, words: str) -> list[str]:
    """The ids a search for ``words`` finds among published articles."""
    await search.indices.refresh(index=index)
    body = {
        "query": {
            "bool": {
                "must": [{"match": {"title": words}}],
                "filter": [{"term": {"state": "published"}}],
            }
        }
    }
    answer = await search.search(index=index, body=body)
    return [hit["_id"] for hit in answer["hits"]["hits"]]


async def test_an_older_batch_delivered_again_brings_back_no_old_text(
    search: AsyncOpenSearch, writer: ArticleSearchProjector
) -> None:
    article, author = new_id_str(), new_id_str()
    old = [at(publish(article, author, 2, "draughty"), 0)]
    await writer.write(old)
    await writer.write([at(publish(article, author, 3, "polished"), 1)])
    doc, version = await stored(search, writer.index, article)

    await writer.write(old)

    assert await stored(search, writer.index, article) == (doc, version), "not even a write"
    assert doc["title"] == "polished"
    assert await found(search, writer.index, "draughty") == []
    assert await found(search, writer.index, "polished") == [article]


async def test_a_zombie_writing_an_older_version_brings_back_no_deleted_article(
    search: AsyncOpenSearch, engine: AsyncEngine, prefix: str, writer: ArticleSearchProjector
) -> None:
    """Two instances of the projector on one index: the one that lost the partitions still
    holds a batch it read before the article was deleted, and writes it after."""
    zombie = ArticleSearchProjector(search, engine, prefix=prefix)
    article, author = new_id_str(), new_id_str()
    stale = [at(publish(article, author, 2, "resurrected"), 0)]
    await writer.write(stale)
    await writer.write([at(ArticleDeleted(article_id=article, author_id=author, version=3), 1)])
    doc, version = await stored(search, writer.index, article)

    await zombie.write(stale)

    assert await stored(search, writer.index, article) == (doc, version)
    assert doc["state"] == "deleted"
    assert "title" not in doc
    assert await found(search, writer.index, "resurrected") == []


async def test_text_that_looks_like_script_is_stored_as_written(
    search: AsyncOpenSearch, writer: ArticleSearchProjector
) -> None:
    article, author = new_id_str(), new_id_str()
    title = "'); ctx.op = 'delete'; d.v = 999; //"
    event = ArticlePublished(
        article_id=article,
        author_id=author,
        version=2,
        title=title,
        content='""" + params.id + """ ${ctx._source} \\u0000',
        tags=["t"],
    )
    await writer.write([at(event, 0)])
    doc, _ = await stored(search, writer.index, article)
    assert (doc["title"], doc["content"], doc["v"]) == (title, event.content, 2)


@given(case=deliveries(), batch=st.integers(1, 4))
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_opensearch_applies_any_delivery_as_the_fold_does(
    search: AsyncOpenSearch,
    writer: ArticleSearchProjector,
    case: tuple[list[Recorded], list[Recorded]],
    batch: int,
) -> None:
    """The rule OpenSearch runs (the update script) against the Python fold, for any
    batching and any re-deliveries."""
    canonical, delivered = case
    expected = fold_article(empty_article(ARTICLE), canonical)
    await search.delete(index=writer.index, id=ARTICLE, ignore=404)
    for start in range(0, len(delivered), batch):
        await writer.write(delivered[start : start + batch])
    if expected == empty_article(ARTICLE):
        assert not await search.exists(index=writer.index, id=ARTICLE)
        return
    doc, _ = await stored(search, writer.index, ARTICLE)
    assert doc == expected


async def test_the_whole_log_delivered_again_writes_nothing(
    run_id: str, search: AsyncOpenSearch
) -> None:
    """The checkpoints lost (as if the group re-read everything from the start): the real
    runtime applies the whole log to the live index again, and no document changes, not
    even in OpenSearch's version, nor does a withdrawn article come back."""
    async with isolated(run_id, "srch_again") as settings:
        author = new_id_str()
        kept, withdrawn = new_id_str(), new_id_str()
        events: list[Event] = [
            publish(kept, author, 2, "first"),
            publish(withdrawn, author, 2, "gone"),
            publish(kept, author, 3, "second"),
            ArticleWithdrawn(article_id=withdrawn, author_id=author, version=3),
        ]
        await append(settings, events)
        index = index_name(settings.prefix, ARTICLES, 1)
        async with projecting(settings, ARTICLES):
            await until_applied(settings, ARTICLES, len(events))
        before = {i: await stored(search, index, i) for i in (kept, withdrawn)}
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await conn.execute("DELETE FROM projector_checkpoints WHERE projector = $1", ARTICLES)
        finally:
            await conn.close()

        async with projecting(settings, ARTICLES):
            await until_applied(settings, ARTICLES, len(events))
        assert {i: await stored(search, index, i) for i in (kept, withdrawn)} == before
        assert before[kept][0]["title"] == "second"
        assert before[withdrawn][0]["state"] == "withdrawn"
        assert await found(search, index, "first gone") == []


async def test_an_index_made_before_tag_keys_takes_them_when_a_projector_starts(
    prefix: str, search: AsyncOpenSearch, engine: AsyncEngine
) -> None:
    """The mapping is strict: an index made before a field was added would refuse every
    document carrying it, and the projector would wait on it for good."""
    projector = ArticleSearchProjector(search, engine, prefix=prefix)
    body = copy.deepcopy(ARTICLES_BODY)
    del body["mappings"]["properties"]["tag_keys"]
    try:
        await search.indices.create(index=projector.index, body=body)
        await projector.ensure_index(serve=True)
        mapping = await search.indices.get_mapping(index=projector.index)
        fields = mapping[projector.index]["mappings"]["properties"]
        assert fields["tag_keys"] == {"type": "keyword"}
        await projector.ensure_index(serve=True)  # again, as every start does: harmless
    finally:
        await search.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)
