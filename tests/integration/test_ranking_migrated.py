"""The hot ranking follows a migration of the articles read model: once reads come from
the target, the entries' details are the target's."""

from __future__ import annotations

from bloghub.adapters.postgres.migrations import set_phase
from bloghub.migration_phases import Phase
from bloghub.ops.migrate import migration_stores, start
from tests.ranking_rows import add_article, ranking_job, ranking_store
from tests.support import execute_on, second_database


async def test_the_ranking_shows_articles_from_the_store_reads_moved_to(run_id: str) -> None:
    async with (
        ranking_store(run_id, "rank_moved") as settings,
        second_database(settings) as target_url,
        migration_stores(settings) as ms,
    ):
        article = await add_article(settings, hours_ago=1, likes=3, title="In the source")
        await start(ms, "articles", target_url)
        # As the target's own projector wrote it: the row it holds now says otherwise.
        await execute_on(
            target_url,
            "INSERT INTO articles_g1.articles (id, author_id, version, status, title, "
            "content, tags, created_at, updated_at, published_version, published_title, "
            "published_content, published_tags, published_at) VALUES ($1, $2, 2, "
            "'published', 'x', 'text', '{t}', $3, $3, 2, 'In the target', 'text', '{t}', $3)",
            article.id,
            article.author_id,
            article.published_at,
        )
        async with ranking_job(settings, "A") as job:
            assert await job.lock.hold()
            titles = []
            for phase in (Phase.SOURCE_FIRST, Phase.TARGET_FIRST):
                async with ms.stores.engine.begin() as conn:
                    assert await set_phase(conn, "articles", Phase(phase - 1), phase)
                entries = await job.compute(article.published_at)
                assert entries is not None
                titles.append([e["title"] for e in entries])
        assert titles == [["In the source"], ["In the target"]]
