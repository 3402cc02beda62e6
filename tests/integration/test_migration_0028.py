"""Migration 0028 gives every notifications generation its deleted articles, so an
article deleted after the upgrade takes its notifications with it in each of them."""

from __future__ import annotations

import asyncio

import asyncpg

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import create_generation
from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp


async def test_0028_gives_every_notifications_generation_its_deleted_articles(
    run_id: str,
) -> None:
    async with isolated(run_id, "mig28") as settings:
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        async with engine.begin() as sa:
            await create_generation(sa, "notifications", 2, activate=False)
        await engine.dispose()
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            for schema in ("notifications_g1", "notifications_g2"):
                await conn.execute(
                    f"DROP TABLE {schema}.deleted_articles; "
                    f"DROP INDEX {schema}.notifications_by_article"
                )
            await _stamp(settings, "0027")

            await asyncio.to_thread(upgrade_database, settings)

            for schema in ("notifications_g1", "notifications_g2"):
                indexes = {
                    r["indexname"]: r["indexdef"]
                    for r in await conn.fetch(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1",
                        schema,
                    )
                }
                assert indexes["deleted_articles_pkey"].endswith("(article_id)"), schema
                assert indexes["notifications_by_article"].endswith(
                    "(article_id) WHERE (article_id IS NOT NULL)"
                ), schema
        finally:
            await conn.close()
