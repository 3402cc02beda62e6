"""Migrations 0022 and 0026 fold the tags kept before them into the form the projector
keys them by now (``readmodels.tag_key``), so tags that differ only in case (0022), or in
width or Chinese script (0026), on different articles become one tag, listed and counted
as one."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp

WIDE_RUST = "\uff52\uff55\uff53\uff54"  # "rust" in full-width letters, as 0022 left it
WIDE_KANA = "\uff76\uff80\uff76\uff85"  # "カタカナ" in half-width katakana


@pytest.mark.parametrize(
    ("stamp", "kept", "folded", "counts"),
    [
        pytest.param(
            "0021",
            ["Python", "python", "STRAßE", "数据"],
            ["python", "python", "straße", "数据"],
            {"python": 2, "straße": 1, "数据": 1},
            id="0022-case",
        ),
        pytest.param(
            "0025",
            [WIDE_RUST, "rust", WIDE_KANA, "数据", "數據"],
            ["rust", "rust", "カタカナ", "数据", "数据"],
            {"rust": 2, "カタカナ": 1, "数据": 2},
            id="0026-width-and-script",
        ),
    ],
)
async def test_tags_kept_before_are_folded_and_counted_as_one(
    run_id: str, stamp: str, kept: list[str], folded: list[str], counts: dict[str, int]
) -> None:
    async with isolated(run_id, f"mig{stamp}") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        # One article each, but the second holds the second and third tags.
        articles = [str(uuid.uuid4()) for _ in kept]
        articles[2] = articles[1]
        try:
            await conn.execute(
                "INSERT INTO articles_g1.article_tags (article_id, tag) "
                "SELECT * FROM unnest($1::uuid[], $2::text[])",
                articles,
                kept,
            )
            await conn.execute(
                "INSERT INTO articles_g1.tag_counts (tag, articles) "
                "SELECT tag, count(*) FROM unnest($1::text[]) AS t(tag) GROUP BY tag",
                kept,
            )
            await _stamp(settings, stamp)

            await asyncio.to_thread(upgrade_database, settings)

            tagged = await conn.fetch("SELECT article_id::text, tag FROM articles_g1.article_tags")
            assert sorted((r["article_id"], r["tag"]) for r in tagged) == sorted(
                set(zip(articles, folded, strict=True))
            )
            rows = await conn.fetch("SELECT tag, articles FROM articles_g1.tag_counts")
            assert {r["tag"]: r["articles"] for r in rows} == counts
        finally:
            await conn.close()
