"""A read that waits for a position waits in the store it reads: what one store has
passed says nothing of another. While a migration's phase moves from 2 (reads from the
source, the target written first) to 3 (reads from the target, the source written first),
requests still pinned to phase 2 see the source ahead of the target; a request of phase 3
must not take the source's progress for the target's, or it reads the target before the
write it waited for is there."""

from __future__ import annotations

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.migrations import set_phase
from bloghub.api.consistency import Pinned, Progress
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.migration_phases import Phase
from bloghub.ops.migrate import migration_stores, start
from tests.ranking_rows import ranking_store
from tests.support import execute_on, second_database

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
