"""Migration 0023 gives every articles generation the published version's update time,
filled for a published article whose last change was its publish."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp

ROW = (
    "INSERT INTO articles_g1.articles (id, author_id, version, status, title, content, tags, "
    "created_at, updated_at, published_version, published_at) "
    "VALUES ($1, $2, $3, $4, 't', 'c', '{}', $5, $5, $6, $5)"
)


async def test_0023_fills_the_published_update_time_where_the_log_would(run_id: str) -> None:
    async with isolated(run_id, "mig23") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        at = datetime(2026, 1, 2, tzinfo=UTC)
        published, edited = str(uuid.uuid4()), str(uuid.uuid4())
        try:
            await conn.execute("ALTER TABLE articles_g1.articles DROP COLUMN published_updated_at")
            author = str(uuid.uuid4())
            await conn.execute(ROW, published, author, 2, "published", at, 2)
            # Published at version 2, its draft edited since (version 3).
            await conn.execute(ROW, edited, author, 3, "published", at, 2)
            await _stamp(settings, "0022")

            await asyncio.to_thread(upgrade_database, settings)

            rows = await conn.fetch(
                "SELECT id::text, published_updated_at FROM articles_g1.articles"
            )
            assert {r["id"]: r["published_updated_at"] for r in rows} == {
                published: at,
                edited: None,
            }
        finally:
            await conn.close()
