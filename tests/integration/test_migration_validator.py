"""The migration validator and repair on two real databases: a full pass walks every
table by keyset pages (text keys included, between databases of different
collations) and finds a row missing, one different and one extra; an
incremental pass finds what changed since a time; the repair makes the target equal to
the source, and refuses to copy while the stores stand at different points of the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bloghub.adapters.postgres.migrations import Migration, set_phase
from bloghub.ids import new_id_str
from bloghub.migration_phases import Phase, Store
from bloghub.ops import migration_repair
from bloghub.ops.migrate import migration_of, migration_stores, start
from bloghub.ops.migration_repair import RepairBusy, repair_row
from bloghub.ops.migration_validator import PAGE_ROWS, Pair, full_pass, incremental_pass
from tests.conftest import isolated
from tests.support import second_database

# Keys that sort differently by byte and by a linguistic collation (upper case, accents).
TAGS = ["a", "B", "é", "Z", "_x", "zz"]
ARTICLES = PAGE_ROWS // len(TAGS) + 50  # more tag rows than one page


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _fill(url: str, ids: list[str], at: datetime) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.executemany(
            "INSERT INTO articles_g1.articles (id, author_id, version, status, title, content, "
            "tags, created_at, updated_at) VALUES ($1, $1, 1, 'draft', 't', '', $2, $3, $3)",
            [(i, TAGS, at) for i in ids],
        )
        await conn.executemany(
            "INSERT INTO articles_g1.article_tags (article_id, tag) VALUES ($1, $2)",
            [(i, t) for i in ids for t in TAGS],
        )
    finally:
        await conn.close()


async def test_validator_finds_each_difference_both_ways_and_repair_fixes_the_target(
    run_id: str,
) -> None:
    async with (
        isolated(run_id, "migval") as s,
        second_database(s, linguistic=True) as target_url,
        migration_stores(s) as ms,
    ):
        await start(ms, "articles", target_url)
        async with ms.stores.engine.begin() as conn:
            assert await set_phase(conn, "articles", Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
        migration = await migration_of(ms.stores, "articles")
        ids = sorted(new_id_str() for _ in range(ARTICLES))
        long_ago = datetime.now(UTC) - timedelta(days=1)
        for url in (s.sqlalchemy_url, target_url):
            await _fill(url, ids, long_ago)
        pair = Pair(migration, ms.stores.engine, ms.engine(Store.TARGET, migration))
        assert await full_pass(pair) == []  # equal, across pages and collations

        before = datetime.now(UTC)
        target = await asyncpg.connect(_dsn(target_url))
        try:
            await target.execute(
                "DELETE FROM articles_g1.article_tags WHERE article_id = $1 AND tag = 'é'",
                ids[3],
            )
            await target.execute(
                "UPDATE articles_g1.articles SET title = 'changed', updated_at = now() "
                "WHERE id = $1",
                ids[7],
            )
            await target.execute("INSERT INTO articles_g1.article_tags VALUES ($1, 'Ω')", ids[9])
        finally:
            await target.close()

        found = {(d.table, d.kind, tuple(d.key.values())) for d in await full_pass(pair)}
        assert found == {
            ("article_tags", "missing", (ids[3], "é")),
            ("articles", "different", (ids[7],)),
            ("article_tags", "extra", (ids[9], "Ω")),
        }
        recent = await incremental_pass(pair, before)
        assert [(d.table, d.kind, d.key) for d in recent] == [
            ("articles", "different", {"id": ids[7]})
        ]

        engines = {Store.SOURCE: ms.stores.engine, Store.TARGET: pair.target}
        for d in await full_pass(pair):
            assert await repair_row(migration, engines, d.table, d.key)
        assert await full_pass(pair) == []


async def test_repair_waits_for_both_stores_to_stand_at_the_same_offsets(
    run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migration_repair, "SETTLE_S", 0.3)
    async with (
        isolated(run_id, "migbusy") as s,
        second_database(s, linguistic=True) as target_url,
        migration_stores(s) as ms,
    ):
        await start(ms, "articles", target_url)
        async with ms.stores.engine.begin() as conn:
            assert await set_phase(conn, "articles", Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
        migration: Migration = await migration_of(ms.stores, "articles")
        article = new_id_str()
        await _fill(s.sqlalchemy_url, [article], datetime.now(UTC))
        # The source has applied one event more than the target (a batch in flight).
        for url, offset in ((s.sqlalchemy_url, 5), (target_url, 4)):
            conn = await asyncpg.connect(_dsn(url))
            try:
                await conn.execute(
                    "INSERT INTO projector_checkpoints (projector, generation, topic, "
                    "partition, next_offset) VALUES ('articles', 1, 'x', 0, $1)",
                    offset,
                )
            finally:
                await conn.close()
        engines = {
            Store.SOURCE: ms.stores.engine,
            Store.TARGET: ms.engine(Store.TARGET, migration),
        }
        with pytest.raises(RepairBusy):
            await repair_row(migration, engines, "articles", {"id": article})
        target = await asyncpg.connect(_dsn(target_url))
        try:
            assert await target.fetchval("SELECT count(*) FROM articles_g1.articles") == 0
        finally:
            await target.close()
