"""Read marks (who was counted reading which article, and when) are dropped once the log's
time of their partition is past a day and an hour after them, so the table does not grow
with every reader there ever was; a partition whose time is behind keeps its marks; reads
within the hour are still counted once; and one batch (a replay) ends as the live
batches did."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bloghub.adapters.postgres.generations import create_generation
from bloghub.events.base import Recorded
from bloghub.events.interactions import ArticleRead
from bloghub.ids import new_id_str
from bloghub.projections.interactions import InteractionsProjector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import recorded

LIVE, REPLAY = 2, 3
T0 = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
AUTHOR, A, B = new_id_str(), new_id_str(), new_id_str()
R1, R2, R3 = "anon:one", new_id_str(), "anon:three"


@pytest.fixture(scope="module")
async def rig(run_id: str) -> AsyncIterator[tuple[Settings, dict[int, InteractionsProjector]]]:
    async with isolated(run_id, "readmarks") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                for generation in (LIVE, REPLAY):
                    await create_generation(conn, "interactions", generation, activate=False)
            yield s, {g: InteractionsProjector(engine, generation=g) for g in (LIVE, REPLAY)}
        finally:
            await engine.dispose()


def read(article: str, reader: str, at: datetime, partition: int, offset: int) -> Recorded:
    event = ArticleRead(article_id=article, author_id=AUTHOR, reader=reader)
    r = recorded(event, topic="interactions", partition=partition, offset=offset)
    return r._replace(envelope=r.envelope._replace(occurred_at=at))


async def apply(projector: InteractionsProjector, batch: list[Recorded]) -> None:
    await projector.apply(batch, {(r.topic, r.partition): r.offset + 1 for r in batch})


async def state(s: Settings, generation: int) -> tuple[set[tuple[str, str, int]], dict[str, int]]:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        schema = f"interactions_g{generation}"
        marks = await conn.fetch(
            f"SELECT article_id::text AS a, reader, part FROM {schema}.read_marks"
        )
        counts = await conn.fetch(
            f"SELECT article_id::text AS a, read_cnt FROM {schema}.article_stats"
        )
    finally:
        await conn.close()
    return {(r["a"], r["reader"], r["part"]) for r in marks}, {
        r["a"]: r["read_cnt"] for r in counts
    }


async def test_old_marks_go_by_their_partitions_time_and_a_replay_ends_the_same(
    rig: tuple[Settings, dict[int, InteractionsProjector]],
) -> None:
    s, projectors = rig
    later = T0 + timedelta(hours=26)  # its hour starts a day and an hour after T0's next
    first = [read(A, R1, T0, 0, 0), read(A, R3, T0, 0, 1), read(B, R1, T0, 1, 0)]
    second = [
        read(A, R2, later, 0, 2),
        read(A, R2, later + timedelta(minutes=10), 0, 3),  # within the hour: not counted
        read(A, R1, later + timedelta(minutes=20), 0, 4),
    ]
    await apply(projectors[LIVE], first)
    marks, _ = await state(s, LIVE)
    assert marks == {(A, R1, 0), (A, R3, 0), (B, R1, 1)}

    await apply(projectors[LIVE], second)
    marks, counts = await state(s, LIVE)
    # R3's mark on A went with partition 0's time (R1's moved on with R1's new read);
    # R1's mark on B stays: partition 1's time has not moved.
    assert marks == {(A, R2, 0), (A, R1, 0), (B, R1, 1)}
    assert counts == {A: 4, B: 1}
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        oldest = await conn.fetchval(
            f"SELECT min(counted_at) FROM interactions_g{LIVE}.read_marks WHERE part = 0"
        )
    finally:
        await conn.close()
    assert oldest == later

    await apply(projectors[REPLAY], [*first, *second])
    assert await state(s, REPLAY) == (marks, counts)
