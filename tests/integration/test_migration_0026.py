"""Migration 0026 folds the tags kept in full width (or another compatibility form) or in
traditional Chinese before it, so such a tag and its plain or simplified form on different
articles become one tag, listed and counted as one."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp


async def test_0026_folds_full_width_and_traditional_tags_into_one(run_id: str) -> None:
    async with isolated(run_id, "mig26") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        a, b, c, d = (str(uuid.uuid4()) for _ in range(4))
        # As 0022 left them: lower-cased, full width kept.
        wide, kana = "\uff52\uff55\uff53\uff54", "\uff76\uff80\uff76\uff85"  # "rust", "カタカナ"
        try:
            await conn.execute(
                "INSERT INTO articles_g1.article_tags (article_id, tag) "
                "SELECT * FROM unnest($1::uuid[], $2::text[])",
                [a, b, b, c, d],
                [wide, "rust", kana, "数据", "數據"],
            )
            await conn.execute(
                "INSERT INTO articles_g1.tag_counts (tag, articles) "
                "SELECT * FROM unnest($1::text[], $2::int[])",
                [wide, "rust", kana, "数据", "數據"],
                [1, 1, 1, 1, 1],
            )
            await _stamp(settings, "0025")

            await asyncio.to_thread(upgrade_database, settings)

            tagged = await conn.fetch("SELECT article_id::text, tag FROM articles_g1.article_tags")
            assert sorted((r["article_id"], r["tag"]) for r in tagged) == sorted(
                [(a, "rust"), (b, "rust"), (b, "カタカナ"), (c, "数据"), (d, "数据")]
            )
            counts = await conn.fetch("SELECT tag, articles FROM articles_g1.tag_counts")
            assert {r["tag"]: r["articles"] for r in counts} == {
                "rust": 2,
                "カタカナ": 1,
                "数据": 2,
            }
        finally:
            await conn.close()
