"""`bloghub db upgrade` brings a read model that `bloghub migrate` moved to another database
the changes the main database's generations get from Alembic, once each; a target it
cannot reach is named, with exit 2, and the main database is upgraded all the same. A
generation whose source schema was dropped (phase 4, as the runbook says) does not stop
an upgrade."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
from alembic.script import ScriptDirectory

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.migrations import register_migration
from bloghub.cli import alembic_config, upgrade_database
from bloghub.ops.migrate import migration_stores, start
from tests.conftest import isolated
from tests.e2e.test_cli_errors import bloghub
from tests.integration.test_migrations import _stamp
from tests.support import execute_on, second_database

ROW = (
    "INSERT INTO articles_g1.articles (id, author_id, version, status, title, content, tags, "
    "created_at, updated_at, published_version, published_at) "
    "VALUES ($1, $2, $3, 'published', 't', 'c', '{}', $4, $4, $5, $4)"
)


async def test_db_upgrade_reaches_a_read_model_moved_to_another_database(run_id: str) -> None:
    async with (
        isolated(run_id, "rmup") as s,
        second_database(s) as target_url,
        migration_stores(s) as ms,
    ):
        await start(ms, "articles", target_url)
        # The target as an older release left it: no published update time, tags as written,
        # and no record of the steps.
        await execute_on(
            target_url, "ALTER TABLE articles_g1.articles DROP COLUMN published_updated_at"
        )
        await execute_on(target_url, "DELETE FROM read_model_upgrades")
        at = datetime(2026, 1, 2, tzinfo=UTC)
        published, edited, author = (str(uuid.uuid4()) for _ in range(3))
        await execute_on(target_url, ROW, published, author, 2, at, 2)
        await execute_on(target_url, ROW, edited, author, 3, at, 2)  # its draft edited since
        await execute_on(
            target_url,
            "INSERT INTO articles_g1.article_tags (article_id, tag) VALUES ($1, 'Python'), "
            "($2, 'python')",
            published,
            edited,
        )

        reached = await asyncio.to_thread(upgrade_database, s)

        assert [(r.migration.projector, r.applied, r.failed) for r in reached] == [
            ("articles", ("0022", "0023", "0026"), None)
        ]
        target = await asyncpg.connect(target_url.replace("+asyncpg", ""))
        try:
            rows = await target.fetch(
                "SELECT id::text, published_updated_at FROM articles_g1.articles"
            )
            assert {r["id"]: r["published_updated_at"] for r in rows} == {
                published: at,
                edited: None,
            }
            tags = await target.fetch("SELECT tag FROM articles_g1.article_tags")
            assert sorted(r["tag"] for r in tags) == ["python", "python"]
        finally:
            await target.close()
        # Once each: the next upgrade has nothing to do there.
        again = await asyncio.to_thread(upgrade_database, s)
        assert [(r.applied, r.failed) for r in again] == [((), None)]
        assert "nothing to do" in str(again[0])


async def test_a_target_built_by_this_release_is_not_upgraded_again(run_id: str) -> None:
    # Its tables are the current ones: running the steps again would only scan (and, for
    # the tag fold, lock) live tables at the next deploy's `bloghub db upgrade`.
    async with (
        isolated(run_id, "rmfresh") as s,
        second_database(s) as target_url,
        migration_stores(s) as ms,
    ):
        await start(ms, "articles", target_url)
        reached = await asyncio.to_thread(upgrade_database, s)
        assert [(r.migration.projector, r.applied, r.failed) for r in reached] == [
            ("articles", (), None)
        ]


async def test_a_target_out_of_reach_is_named_and_the_main_database_upgraded(
    run_id: str,
) -> None:
    async with isolated(run_id, "rmdown") as s:
        down = "postgresql+asyncpg://bloghub:bloghub@127.0.0.1:1/gone"
        main = await asyncpg.connect(s.asyncpg_dsn)
        try:
            engine = make_engine(s.sqlalchemy_url, pool_size=1)
            async with engine.begin() as conn:
                await register_migration(conn, "articles", 1, down)
            await engine.dispose()
            await main.execute("ALTER TABLE articles_g1.articles DROP COLUMN published_updated_at")
            await _stamp(s, "0022")

            ran, err = await bloghub(
                {"BLOGHUB_DATABASE_URL": s.sqlalchemy_url, "BLOGHUB_PREFIX": s.prefix},
                "db",
                "upgrade",
            )

            assert ran.code == 2, ran.out
            assert "Traceback" not in ran.out, ran.out
            last = err.strip().splitlines()[-1]
            assert last.startswith("not upgraded: articles g1 at "), ran.out
            assert "127.0.0.1:1/gone" in last, last
            assert "bloghub:bloghub@" not in last, "the password is not shown"
            assert "run `bloghub db upgrade` again" in last, last
            column = await main.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                "'articles_g1' AND column_name = 'published_updated_at'"
            )
            assert column == 1, "the main database is upgraded all the same"
        finally:
            await main.close()


async def test_an_upgrade_passes_over_a_source_schema_dropped_after_a_migration(
    run_id: str,
) -> None:
    async with isolated(run_id, "rmdrop") as s:
        main = await asyncpg.connect(s.asyncpg_dsn)
        try:
            await main.execute("DROP SCHEMA articles_g1 CASCADE")
            await main.execute("DROP SCHEMA interactions_g1 CASCADE")
            await _stamp(s, "0016")

            await asyncio.to_thread(upgrade_database, s)

            version = await main.fetchval("SELECT version_num FROM alembic_version")
            assert version == ScriptDirectory.from_config(alembic_config("")).get_current_head()
        finally:
            await main.close()
