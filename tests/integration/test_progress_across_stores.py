"""A read that waits for a position waits in the store it reads: what one store has
passed says nothing of another. While a migration's phase moves from 2 (reads from the
source, the target written first) to 3 (reads from the target, the source written first),
requests still pinned to phase 2 see the source ahead of the target; a request of phase 3
must not take the source's progress for the target's, or it reads the target before the
write it waited for is there."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from bloghub.adapters.postgres import engines
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.migrations import set_phase
from bloghub.api.consistency import Pinned, Progress
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.migration_phases import Phase
from bloghub.ops.migrate import abort, migration_stores, start
from tests.ranking_rows import ranking_store
from tests.support import execute_on, second_database, wait_until

READS = [("interactions", (Family.INTERACTIONS,))]
CHECKPOINT = (
    "INSERT INTO public.projector_checkpoints "
    "(projector, generation, topic, partition, next_offset, updated_at) "
    "VALUES ('interactions', 1, $1, 0, $2, now()) "
    "ON CONFLICT (projector, generation, topic, partition) "
    "DO UPDATE SET next_offset = excluded.next_offset"
)


async def test_a_store_ahead_before_a_phase_move_does_not_answer_for_the_next(
    run_id: str,
) -> None:
    async with (
        ranking_store(run_id, "progress_moved") as settings,
        second_database(settings) as target_url,
        migration_stores(settings) as ms,
    ):
        await start(ms, "interactions", target_url)
        async with ms.stores.engine.begin() as conn:
            assert await set_phase(conn, "interactions", Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
        topic = topic_for(settings.prefix, Family.INTERACTIONS)
        # The source has applied offsets 0-9, the target 0-4 (so far).
        await execute_on(settings.sqlalchemy_url, CHECKPOINT, topic, 10)
        await execute_on(target_url, CHECKPOINT, topic, 5)
        written = Position({(topic, 0): 7})

        engine = make_engine(settings.sqlalchemy_url, pool_size=2)
        progress = Progress(engine, prefix=settings.prefix, generations_ttl_s=0.001)
        try:
            # A request of phase 2 waits in the source, which has passed offset 7.
            assert await progress.reached(READS, written, Pinned(progress))
            async with ms.stores.engine.begin() as conn:
                assert await set_phase(conn, "interactions", Phase.SOURCE_FIRST, Phase.TARGET_FIRST)
            # A request of phase 3 reads the target: not there yet.
            assert not await progress.reached(READS, written, Pinned(progress))
            assert not await progress.wait(READS, written, 0.2, Pinned(progress))
            await execute_on(target_url, CHECKPOINT, topic, 8)
            assert await progress.reached(READS, written, Pinned(progress))
        finally:
            await progress.engines.dispose()
            await engine.dispose()


async def _sessions_on(url: str, app: str) -> int:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = $1",
            app,
        )
        return count
    finally:
        await conn.close()


async def test_an_aborted_migrations_target_is_let_go(
    run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API process that read a migration's target closes its connections there once
    the migration is forgotten (they stayed open until a restart: the target could not be
    dropped)."""
    monkeypatch.setattr(engines, "RETIRE_AFTER_S", 0.2)
    async with (
        ranking_store(run_id, "progress_let_go") as settings,
        second_database(settings) as target_url,
        migration_stores(settings) as ms,
    ):
        await start(ms, "interactions", target_url)
        moves = (Phase.SOURCE_ONLY, Phase.SOURCE_FIRST, Phase.TARGET_FIRST)
        for before, after in itertools.pairwise(moves):
            async with ms.stores.engine.begin() as conn:
                assert await set_phase(conn, "interactions", before, after)
        engine = make_engine(settings.sqlalchemy_url, pool_size=2)
        progress = Progress(engine, prefix=settings.prefix, generations_ttl_s=0.001)
        try:
            written = Position({(topic_for(settings.prefix, Family.INTERACTIONS), 0): 1})
            await progress.reached(READS, written, Pinned(progress))  # reads the target
            assert await _sessions_on(target_url, "bloghub-api-migrated") >= 1
            for before, after in itertools.pairwise(reversed(moves)):
                async with ms.stores.engine.begin() as conn:
                    assert await set_phase(conn, "interactions", before, after)
            await abort(ms, "interactions")

            async def let_go() -> bool:
                await progress.generations()
                return await _sessions_on(target_url, "bloghub-api-migrated") == 0

            await wait_until(let_go, timeout_s=10)
        finally:
            await progress.engines.dispose()
            await engine.dispose()
