"""Published articles per tag follow any run of publish, re-publish under other tags,
withdraw and delete, however the events fall into batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bloghub.adapters.postgres.generations import create_generation
from bloghub.events.articles import ArticleEvent
from bloghub.events.base import Recorded
from bloghub.projections.articles import ArticlesProjector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import ArticleBook, batches, recorded

Step = tuple[str, int, list[str]]  # an operation, which article, the tags it sets
OPS = st.sampled_from(["create", "edit", "publish", "withdraw", "delete", "stale"])
TAGS = st.lists(st.sampled_from(["go", "py", "rs", "js", "db", "中文"]), max_size=5, unique=True)
# Few articles, so that most steps change one that is published already.
STEPS = st.lists(st.tuples(OPS, st.integers(0, 3), TAGS), min_size=1, max_size=40)
SPLITS = st.lists(st.integers(1, 8), min_size=1, max_size=10)
TOPIC = "articles"
GENERATION = 2
SCHEMA = f"articles_g{GENERATION}"


@dataclass
class Rig:
    settings: Settings
    projector: ArticlesProjector


@pytest.fixture(scope="module")
async def rig(run_id: str) -> AsyncIterator[Rig]:
    async with isolated(run_id, "tally") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await create_generation(conn, "articles", GENERATION, activate=False)
            projector = ArticlesProjector(engine, generation=GENERATION)
            projector.live = False
            yield Rig(s, projector)
        finally:
            await engine.dispose()


def _events(book: ArticleBook, steps: Sequence[Step]) -> list[ArticleEvent]:
    out: list[ArticleEvent | None] = []
    for op, which, tags in steps:
        ids = list(book.articles)
        if op == "create" or not ids:
            out.append(book.create(tags))
            continue
        article_id = ids[which % len(ids)]
        match op:
            case "edit":
                out.append(book.edit(article_id, tags))
            case "publish":
                out.append(book.publish(article_id))
            case "withdraw":
                out.append(book.withdraw(article_id))
            case "delete":
                out.append(book.delete(article_id))
            case _:
                out.append(book.lost_race(article_id, tags))
    return [e for e in out if e is not None]


def _records(events: Sequence[ArticleEvent]) -> list[Recorded]:
    """The events as read from two partitions, each article's on one of them."""
    partition_of: dict[str, int] = {}
    offsets = Counter[int]()
    out = []
    for event in events:
        partition = partition_of.setdefault(event.article_id, len(partition_of) % 2)
        out.append(recorded(event, topic=TOPIC, partition=partition, offset=offsets[partition]))
        offsets[partition] += 1
    return out


async def _counts_then_empty(s: Settings) -> tuple[Counter[str], Counter[str]]:
    """The kept counts, and the counts worked out afresh from the tag rows; the
    generation is emptied after, checkpoints included, for the next example."""
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        kept = await conn.fetch(f"SELECT tag, articles FROM {SCHEMA}.tag_counts")
        rows = await conn.fetch(
            f"SELECT tag, count(*) AS n FROM {SCHEMA}.article_tags GROUP BY tag"
        )
        await conn.execute(
            f"TRUNCATE {SCHEMA}.articles, {SCHEMA}.article_tags, {SCHEMA}.tag_counts; "
            f"DELETE FROM projector_checkpoints WHERE generation = {GENERATION}"
        )
    finally:
        await conn.close()
    return (
        Counter({r["tag"]: r["articles"] for r in kept}),
        Counter({r["tag"]: r["n"] for r in rows}),
    )


REPUBLISHED: list[Step] = [
    ("create", 0, ["go", "py"]),
    ("publish", 0, []),
    ("edit", 0, ["py", "rs"]),
]
GONE: list[Step] = [("publish", 0, []), ("withdraw", 0, []), ("delete", 0, [])]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS, sizes=SPLITS)
# Re-published under other tags, in one batch and across batches; then withdrawn, deleted.
@example(steps=[*REPUBLISHED, ("publish", 0, [])], sizes=[8])
@example(steps=[*REPUBLISHED, ("publish", 0, [])], sizes=[1])
@example(steps=[*REPUBLISHED, *GONE], sizes=[2])
# A delete of a withdrawn article, and a publish the article has already passed.
@example(steps=[*REPUBLISHED, ("withdraw", 0, []), ("delete", 0, [])], sizes=[3])
@example(steps=[*REPUBLISHED, ("stale", 0, ["js"])], sizes=[1])
async def test_tag_counts_equal_the_published_articles_in_any_batch_split(
    rig: Rig, steps: list[Step], sizes: list[int]
) -> None:
    book = ArticleBook()
    for batch in batches(_records(_events(book, steps)), sizes):
        ends = {(r.topic, r.partition): r.offset + 1 for r in batch}
        await rig.projector.apply(batch, ends)

    kept, recounted = await _counts_then_empty(rig.settings)
    expected = book.published_per_tag()
    assert kept == expected
    assert recounted == expected
    assert all(n > 0 for n in kept.values()), "a tag no article has is not listed"
