"""``bloghub migrate``: the database the read model is in is refused as the target however
its URL is spelled; ``status`` shows every migration when one target cannot be reached;
``validate --every`` wants an interval above zero."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.migrations import register_migration
from bloghub.migration_phases import MigrationRefused
from bloghub.ops.migrate import database_identity, migration_stores, same_database, start
from bloghub.settings import Settings
from tests.conftest import isolated, pg
from tests.e2e.test_ops_cli import bloghub, refused


@pytest.fixture(scope="module")
async def own(run_id: str) -> AsyncIterator[Settings]:
    async with isolated(run_id, "migsame") as s:
        yield s


def spellings(settings: Settings) -> list[str]:
    """The main database under other URLs that reach the same one."""
    url = make_url(settings.sqlalchemy_url)
    assert url.host == "127.0.0.1", url
    return [
        url.set(host="localhost").render_as_string(hide_password=False),
        url.set(port=None).render_as_string(hide_password=False),  # the default, 5432
        url.update_query_dict({"prepared_statement_cache_size": "50"}).render_as_string(
            hide_password=False
        ),
    ]


async def migrations_of(settings: Settings) -> int:
    async with pg(settings) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM projector_migrations"))


async def test_the_main_database_spelled_otherwise_is_refused(own: Settings) -> None:
    for target in spellings(own):
        async with migration_stores(own) as ms:
            with pytest.raises(MigrationRefused, match="the database the read model is in"):
                await start(ms, "interactions", target)
    assert await migrations_of(own) == 0
    ran = await bloghub(own, "migrate", "start", "interactions", "--to", spellings(own)[0])
    refused(ran, "the database the read model is in already")
    assert await migrations_of(own) == 0


async def test_another_database_on_the_same_server_is_another(own: Settings) -> None:
    main = make_engine(own.sqlalchemy_url, pool_size=1)
    other = make_engine(own.sqlalchemy_url.rsplit("/", 1)[0] + "/postgres", pool_size=1)
    same = make_engine(spellings(own)[0], pool_size=1)
    try:
        ours = await database_identity(main)
        assert not same_database(ours, await database_identity(other))
        assert same_database(ours, await database_identity(same))
    finally:
        for engine in (main, other, same):
            await engine.dispose()


async def test_status_lists_every_migration_when_one_target_is_down(own: Settings) -> None:
    reachable = spellings(own)[0]  # registered directly: the check is start's
    down = own.sqlalchemy_url.rsplit("@", 1)[0] + "@127.0.0.1:1/nowhere"
    engine = make_engine(own.sqlalchemy_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await register_migration(conn, "notifications", 1, reachable)
            await register_migration(conn, "comments", 1, down)
    finally:
        await engine.dispose()
    try:
        ran = await bloghub(own, "migrate", "status")
        assert ran.code == 0, ran.out
        assert "Traceback" not in ran.out, ran.out
        assert "notifications" in ran.out, ran.out
        assert "comments" in ran.out, ran.out
        assert "unreachable" in ran.out, ran.out
        assert "bloghub:bloghub@" not in ran.out, "the password is not shown"
        # A narrow terminal folds names and URLs onto more lines rather than clip them.
        narrow = await bloghub(own, "migrate", "status", env={"COLUMNS": "80"})
        assert narrow.code == 0, narrow.out
        assert "…" not in narrow.out, narrow.out
        # validate says the target cannot be reached, in one line, without a traceback.
        async with pg(own) as conn:
            await conn.execute("UPDATE projector_migrations SET phase = 2")
        refused(await bloghub(own, "migrate", "validate", "comments"), "cannot reach")
        # Moving on, or filling, names the target it cannot reach, not the main database
        # (which answers): both said "cannot reach PostgreSQL at" the main database's URL.
        target = "cannot reach the target postgresql+asyncpg://bloghub:***@127.0.0.1:1/nowhere"
        refused(await bloghub(own, "migrate", "phase", "comments", "3"), target)
        async with pg(own) as conn:
            await conn.execute("UPDATE projector_migrations SET phase = 1")
        refused(await bloghub(own, "migrate", "fill", "comments"), target)
    finally:
        async with pg(own) as conn:
            await conn.execute("DELETE FROM projector_migrations")


async def test_validate_every_wants_an_interval_above_zero(own: Settings) -> None:
    for every in ("-1", "0", "nan"):
        refused(
            await bloghub(own, "migrate", "validate", "comments", "--every", every),
            "--every",
            "more than 0",
        )
