"""Migration 0020 gives every notifications generation its comment threads, so a comment
deleted after the upgrade takes its notifications with it in each of them."""

from __future__ import annotations

import asyncio

import asyncpg

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import create_generation
from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp


async def notifications_upgrade_restores(
    run_id: str, name: str, drops: str, before: str, wanted: dict[str, str]
) -> None:
    """With two notifications generations whose ``drops`` (SQL, ``{schema}`` for each)
    undid a revision, and the database stamped at ``before``: ``bloghub db upgrade``
    brings back every index of ``wanted`` (name -> how its definition ends) in both."""
    async with isolated(run_id, name) as settings:
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        async with engine.begin() as sa:
            await create_generation(sa, "notifications", 2, activate=False)
        await engine.dispose()
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            schemas = ("notifications_g1", "notifications_g2")
            for schema in schemas:
                await conn.execute(drops.format(schema=schema))
            await _stamp(settings, before)

            await asyncio.to_thread(upgrade_database, settings)

            for schema in schemas:
                indexes = {
                    r["indexname"]: r["indexdef"]
                    for r in await conn.fetch(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1",
                        schema,
                    )
                }
                for index, ending in wanted.items():
                    assert indexes[index].endswith(ending), (schema, index)
        finally:
            await conn.close()


async def test_0020_gives_every_notifications_generation_its_comment_threads(
    run_id: str,
) -> None:
    await notifications_upgrade_restores(
        run_id,
        "mig20",
        "DROP TABLE {schema}.comment_threads; DROP INDEX {schema}.notifications_by_comment",
        "0019",
        {
            "comment_threads_pkey": "(comment_id)",
            "comment_threads_by_parent": "(parent_id) WHERE (parent_id IS NOT NULL)",
            "notifications_by_comment": "(comment_id) WHERE (comment_id IS NOT NULL)",
        },
    )
