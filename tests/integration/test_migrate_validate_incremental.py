"""``bloghub migrate validate NAME --since T`` (each pass after the first of ``--every S``)
as an operator runs it. A table with no ``updated_at`` cannot tell which of its rows
changed since T, so it is compared whole and the pass says so (every table of
interactions; articles' tags and tag counts); a target that cannot be reached is named
and the pass refused, never reported as compared."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from bloghub.adapters.postgres.migrations import set_phase
from bloghub.ids import new_id_str
from bloghub.migration_phases import Phase
from bloghub.ops.migrate import migration_stores, start
from bloghub.settings import Settings
from tests.conftest import isolated, pg
from tests.support import execute_on, projector_env, second_database

DOWN = "postgresql+asyncpg://bloghub:bloghub@127.0.0.1:1/nowhere"  # nothing listens there


@dataclass(frozen=True)
class Migrated:
    settings: Settings
    target_url: str


@dataclass(frozen=True)
class Ran:
    code: int
    out: str  # stdout and stderr, rich's line wraps undone


@pytest.fixture(scope="module")
async def migrated(run_id: str) -> AsyncIterator[Migrated]:
    """interactions and articles in phase 2 between two equal, empty stores."""
    async with (
        isolated(run_id, "valinc") as s,
        second_database(s) as target_url,
        migration_stores(s) as ms,
    ):
        for name in ("interactions", "articles"):
            await start(ms, name, target_url)
            async with ms.stores.engine.begin() as conn:
                assert await set_phase(conn, name, Phase.SOURCE_ONLY, Phase.SOURCE_FIRST)
        yield Migrated(s, target_url)


async def validate_since_now(settings: Settings, name: str) -> Ran:
    since = datetime.now(UTC).isoformat()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bloghub.cli", "migrate", "validate", name, "--since", since),
        env={**projector_env(settings, batch=100), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Ran(process.returncode, " ".join(out.decode().split()))


async def test_a_projector_with_no_updated_at_is_compared_whole(migrated: Migrated) -> None:
    like = (new_id_str(), new_id_str())
    await execute_on(
        migrated.target_url,
        "INSERT INTO interactions_g1.likes (article_id, user_id, liked_at) "
        "VALUES ($1::uuid, $2::uuid, now() - interval '1 day')",
        *like,
    )
    try:
        ran = await validate_since_now(migrated.settings, "interactions")
    finally:
        await execute_on(
            migrated.target_url,
            "DELETE FROM interactions_g1.likes WHERE article_id = $1::uuid",
            like[0],
        )
    assert ran.code == 1, ran.out
    assert "extra: likes" in ran.out, ran.out
    assert "every row compared (no table has updated_at to tell what changed since" in ran.out
    assert "1 differences sent for repair" in ran.out, ran.out


async def test_the_tables_without_updated_at_are_compared_whole_beside_the_rest(
    migrated: Migrated,
) -> None:
    article = new_id_str()
    await execute_on(
        migrated.target_url,
        "INSERT INTO articles_g1.article_tags (article_id, tag) VALUES ($1::uuid, 'old')",
        article,
    )
    try:
        ran = await validate_since_now(migrated.settings, "articles")
    finally:
        await execute_on(
            migrated.target_url,
            "DELETE FROM articles_g1.article_tags WHERE article_id = $1::uuid",
            article,
        )
    assert ran.code == 1, ran.out
    assert "extra: article_tags" in ran.out, ran.out
    assert "and every row of article_tags, tag_counts (no updated_at)" in ran.out, ran.out


async def test_an_unreachable_target_is_named_not_passed_as_compared(
    migrated: Migrated,
) -> None:
    async with pg(migrated.settings) as conn:
        await conn.execute(
            "UPDATE projector_migrations SET target_url = $1 WHERE projector = 'interactions'",
            DOWN,
        )
    try:
        ran = await validate_since_now(migrated.settings, "interactions")
    finally:
        async with pg(migrated.settings) as conn:
            await conn.execute(
                "UPDATE projector_migrations SET target_url = $1 WHERE projector = 'interactions'",
                migrated.target_url,
            )
    assert ran.code == 2, ran.out
    assert "Traceback" not in ran.out, ran.out
    assert "refused: cannot reach postgresql+asyncpg://bloghub:***@127.0.0.1:1/nowhere" in ran.out
    assert "compared" not in ran.out, ran.out
