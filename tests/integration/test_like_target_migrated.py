"""A like decides on the interactions read model where its reads come from: once a
migration moves them to another database, the article's state there, not the source's."""

from __future__ import annotations

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.lookups import Lookups
from bloghub.adapters.postgres.migrations import set_phase
from bloghub.api.consistency import Pinned, Progress
from bloghub.api.interaction_queries import InteractionQueries
from bloghub.migration_phases import Phase
from bloghub.ops.migrate import migration_stores, start
from tests.ranking_rows import add_article, ranking_store
from tests.support import execute_on, second_database


async def test_a_like_decides_on_the_store_its_reads_moved_to(run_id: str) -> None:
    async with (
        ranking_store(run_id, "like_moved") as settings,
        second_database(settings) as target_url,
        migration_stores(settings) as ms,
    ):
        # Withdrawn as the source holds it; published again as the target's projector wrote.
        article = await add_article(settings, hours_ago=1, visible=False)
        await start(ms, "interactions", target_url)
        await execute_on(
            target_url,
            "INSERT INTO interactions_g1.article_stats (article_id, author_id, "
            "published_at, visible, read_cnt, like_cnt, collect_cnt) "
            "VALUES ($1, $2, $3, true, 0, 0, 0)",
            article.id,
            article.author_id,
            article.published_at,
        )

        engine = make_engine(settings.sqlalchemy_url, pool_size=2)
        lookups = await Lookups.open(settings.asyncpg_dsn, size=2, app="test-like-moved")
        progress = Progress(engine, prefix=settings.prefix, generations_ttl_s=0.001)
        try:
            seen = []
            for phase in (Phase.SOURCE_FIRST, Phase.TARGET_FIRST):
                async with ms.stores.engine.begin() as conn:
                    assert await set_phase(conn, "interactions", Phase(phase - 1), phase)
                queries = InteractionQueries(engine, Pinned(progress), lookups)
                found = await queries.target(article.id)
                assert found is not None
                seen.append(found.visible)
            assert seen == [False, True]
        finally:
            await lookups.close()
            await progress.engines.dispose()
            await engine.dispose()
