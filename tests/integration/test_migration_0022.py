"""Migration 0022 folds the tags written before it, so tags that differ only in case on
different articles become one tag, listed and counted as one."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp


async def test_0022_folds_tags_and_counts_them_as_one(run_id: str) -> None:
    async with isolated(run_id, "mig22") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        a, b, c = (str(uuid.uuid4()) for _ in range(3))
        try:
            await conn.execute(
                "INSERT INTO articles_g1.article_tags (article_id, tag) "
                "SELECT * FROM unnest($1::uuid[], $2::text[])",
                [a, b, b, c],
                ["Python", "python", "STRAßE", "数据"],
            )
            await conn.execute(
                "INSERT INTO articles_g1.tag_counts (tag, articles) "
                "VALUES ('Python', 1), ('python', 1), ('STRAßE', 1), ('数据', 1)"
            )
            await _stamp(settings, "0021")

            await asyncio.to_thread(upgrade_database, settings)

            tagged = await conn.fetch("SELECT article_id::text, tag FROM articles_g1.article_tags")
            assert sorted((r["article_id"], r["tag"]) for r in tagged) == sorted(
                [(a, "python"), (b, "python"), (b, "straße"), (c, "数据")]
            )
            counts = await conn.fetch("SELECT tag, articles FROM articles_g1.tag_counts")
            assert {r["tag"]: r["articles"] for r in counts} == {
                "python": 2,
                "straße": 1,
                "数据": 1,
            }
        finally:
            await conn.close()
