"""RealWorld's ``?favorited=`` list for a user who likes more articles than one statement
takes parameters (asyncpg: 32767): the right page and count whether the likes sit beside
the articles (one statement over both read models) or a migration has moved the
interactions reads to another database (the liked ids travel as one array)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.migrations import set_phase
from bloghub.api.conduit.queries import ConduitQueries, Filters
from bloghub.api.consistency import Pinned, Progress
from bloghub.ids import new_id_str
from bloghub.migration_phases import Phase
from bloghub.ops.migrate import migration_stores, start
from tests.ranking_rows import add_article, ranking_store
from tests.support import execute_on, second_database

MORE_THAN_PARAMETERS = 33_000
LIKES = (
    "INSERT INTO interactions_g1.likes (article_id, user_id, liked_at)"
    " SELECT id, $1::uuid, now() FROM unnest($2::uuid[]) AS id"
    " UNION ALL SELECT gen_random_uuid(), $1::uuid, now() FROM generate_series(1, $3)"
)


async def add_likes(url: str, fan: str, article_ids: Sequence[str]) -> None:
    """``fan`` likes each of ``article_ids`` and, besides, many articles not in the read
    model (as the likes of deleted articles stay)."""
    await execute_on(url, LIKES, fan, list(article_ids), MORE_THAN_PARAMETERS)


async def listed(
    engine: AsyncEngine, progress: Progress, filters: Filters
) -> tuple[list[str], int, list[str]]:
    """The first page's ids, the count, and the ids of the page of one at offset 1 (each
    read as a request would: its own pinned placements)."""
    first = await ConduitQueries(engine, Pinned(progress)).published(filters, 0, 20)
    second = await ConduitQueries(engine, Pinned(progress)).published(filters, 1, 1)
    return [str(r.id) for r in first.rows], first.total, [str(r.id) for r in second.rows]


async def test_a_fan_of_many_articles_lists_the_published_ones_wherever_likes_are(
    run_id: str,
) -> None:
    async with (
        ranking_store(run_id, "fan_of_many") as settings,
        second_database(settings) as target_url,
        migration_stores(settings) as ms,
    ):
        newest = await add_article(settings, hours_ago=1)
        older = await add_article(settings, hours_ago=2)
        withdrawn = await add_article(settings, hours_ago=3, visible=False)
        later_liked = await add_article(settings, hours_ago=0.5)
        fan = new_id_str()
        await add_likes(settings.sqlalchemy_url, fan, [newest.id, older.id, withdrawn.id])

        engine = make_engine(settings.sqlalchemy_url, pool_size=2)
        progress = Progress(engine, prefix=settings.prefix, generations_ttl_s=0.001)
        try:
            liked = Filters(liked_by=fan)
            assert await listed(engine, progress, liked) == ([newest.id, older.id], 2, [older.id])
            by_author = Filters(liked_by=fan, author_id=older.author_id)
            assert await listed(engine, progress, by_author) == ([older.id], 1, [])

            # The interactions reads move to the target, whose projector has also applied
            # a later like: the list is the target's.
            await start(ms, "interactions", target_url)
            await add_likes(target_url, fan, [newest.id, older.id, withdrawn.id, later_liked.id])
            async with ms.stores.engine.begin() as conn:
                assert await set_phase(conn, "interactions", Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
                assert await set_phase(conn, "interactions", Phase.SOURCE_FIRST, Phase.TARGET_FIRST)
            assert await listed(engine, progress, liked) == (
                [later_liked.id, newest.id, older.id],
                3,
                [newest.id],
            )
            assert await listed(engine, progress, by_author) == ([older.id], 1, [])
        finally:
            await progress.engines.dispose()
            await engine.dispose()
