"""Migration 0015 gives every existing articles generation its slug and description
columns (with the slug's lookup index), every users generation its avatar column and
every comments generation its comment numbers, keeping the rows they hold."""

from __future__ import annotations

import asyncio

import asyncpg

from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp

NEW = {
    "articles": ("slug", "description", "published_description"),
    "users": ("image",),
    "comments": ("number",),
}
INDEXES = {"articles": {"articles_by_slug"}, "users": set(), "comments": {"comments_by_number"}}


async def _columns(conn: asyncpg.Connection, schema: str, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
    )
    return {r["column_name"] for r in rows}


async def test_0015_adds_slugs_descriptions_avatars_and_numbers_to_every_generation(
    run_id: str,
) -> None:
    async with isolated(run_id, "mig15") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # Before 0015: generations 1 and 2 of both read models, without the columns.
            for projector, columns in NEW.items():
                table = projector
                await conn.execute(
                    f"CREATE SCHEMA {projector}_g2; "
                    f"CREATE TABLE {projector}_g2.{table} (LIKE {projector}_g1.{table}); "
                    "INSERT INTO projector_generations (projector, generation, state) "
                    f"VALUES ('{projector}', 2, 'building')"
                )
                for schema in (f"{projector}_g1", f"{projector}_g2"):
                    drops = ", ".join(f"DROP COLUMN {c}" for c in columns)
                    await conn.execute(f"ALTER TABLE {schema}.{table} {drops}")
            await conn.execute(
                "INSERT INTO articles_g1.articles (id, author_id, version, status, title, "
                "content, tags, created_at, updated_at) VALUES (gen_random_uuid(), "
                "gen_random_uuid(), 1, 'draft', 'Kept', 'body', '{}', now(), now())"
            )
            await _stamp(settings, "0014")

            await asyncio.to_thread(upgrade_database, settings)

            for projector, columns in NEW.items():
                for schema in (f"{projector}_g1", f"{projector}_g2"):
                    found = await _columns(conn, schema, projector)
                    assert set(columns) <= found, schema
                    indexes = await conn.fetch(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema
                    )
                    names = {r["indexname"] for r in indexes}
                    assert INDEXES[projector] <= names, schema
            kept = await conn.fetch("SELECT title, slug FROM articles_g1.articles")
            assert [(r["title"], r["slug"]) for r in kept] == [("Kept", None)]
        finally:
            await conn.close()
