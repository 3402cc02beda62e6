"""Migrations that change live read models keep their guarantees on the way."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.generations import create_generation
from bloghub.cli import alembic_config, upgrade_database
from bloghub.settings import Settings
from tests.conftest import isolated

USER = (
    "INSERT INTO users_g1.users (id, email, phone, created_at, updated_at) "
    "VALUES (gen_random_uuid(), $1, $2, now(), now())"
)


async def _users_indexes(conn: asyncpg.Connection, schema: str = "users_g1") -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'users'",
        schema,
    )
    return {r["indexname"]: r["indexdef"] for r in rows}


async def _stamp(settings: Settings, revision: str) -> None:
    from alembic import command

    config = alembic_config(settings.sqlalchemy_url)
    await asyncio.to_thread(command.stamp, config, revision)


async def _upgrade(settings: Settings, revision: str) -> None:
    from alembic import command

    config = alembic_config(settings.sqlalchemy_url)
    await asyncio.to_thread(command.upgrade, config, revision)


async def test_0008_moves_phone_and_wechat_keys_to_partial_indexes(run_id: str) -> None:
    async with isolated(run_id, "mig8") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # The shape a database had before 0008: plain unique constraints.
            await conn.execute(
                "ALTER TABLE users_g1.users ADD CONSTRAINT users_email_key UNIQUE (email), "
                "ADD CONSTRAINT users_phone_key UNIQUE (phone), "
                "ADD CONSTRAINT users_wechat_openid_key UNIQUE (wechat_openid)"
            )
            await conn.execute(USER, "a@example.com", "+8613800000001")
            await conn.execute(USER, "b@example.com", None)
            await _stamp(settings, "0007")

            await _upgrade(settings, "0008")

            indexes = await _users_indexes(conn)
            assert "users_phone_key" not in indexes
            assert "users_wechat_openid_key" not in indexes
            assert indexes["users_phone_uniq"].endswith("WHERE (phone IS NOT NULL)")
            assert indexes["users_wechat_openid_uniq"].endswith("WHERE (wechat_openid IS NOT NULL)")
            # The guarantee holds for rows with a phone; rows without one never clash.
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(USER, "c@example.com", "+8613800000001")
            await conn.execute(USER, "d@example.com", None)
            assert await conn.fetchval("SELECT count(*) FROM users_g1.users") == 3
        finally:
            await conn.close()


async def test_0009_leaves_key_uniqueness_to_the_write_side_index(run_id: str) -> None:
    async with isolated(run_id, "mig9") as settings:
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        async with engine.begin() as sa:
            await create_generation(sa, "users", 2, activate=False)
        await engine.dispose()
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # The shape every users generation had before 0009: unique emails, phones and
            # WeChat ids.
            for schema in SCHEMAS:
                await _restore_unique_keys(conn, schema)
            await conn.execute(USER, "a@example.com", "+8613800000001")
            await _stamp(settings, "0008")

            await asyncio.to_thread(upgrade_database, settings)

            for schema in SCHEMAS:
                indexes = await _users_indexes(conn, schema)
                unique = [name for name, made in indexes.items() if "UNIQUE" in made]
                assert unique == ["users_pkey"], schema
                for column in ("email", "phone", "wechat_openid"):
                    made = indexes[f"users_by_{column}"]
                    assert made.endswith(f"WHERE ({column} IS NOT NULL)")
            # B's event naming A's keys may be applied before A's moving off them: the
            # read model takes it; the write-side index says who holds them.
            await conn.execute(USER, "a@example.com", "+8613800000001")
            assert await conn.fetchval("SELECT count(*) FROM users_g1.users") == 2
        finally:
            await conn.close()


async def test_0010_gives_every_articles_generation_its_tag_counts(run_id: str) -> None:
    async with isolated(run_id, "mig10") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # Before 0010: generation 1 has no counts table; generation 2 got an empty one
            # from 0007. Both have published articles with tags.
            await conn.execute(
                "DROP TABLE articles_g1.tag_counts; CREATE SCHEMA articles_g2; "
                "CREATE TABLE articles_g2.article_tags (LIKE articles_g1.article_tags); "
                "CREATE TABLE articles_g2.tag_counts (tag text PRIMARY KEY, articles int NOT NULL);"
                "INSERT INTO projector_generations (projector, generation, state) "
                "VALUES ('articles', 2, 'building')"
            )
            for schema in ("articles_g1", "articles_g2"):
                await conn.execute(
                    f"INSERT INTO {schema}.article_tags (article_id, tag) "
                    "SELECT gen_random_uuid(), t FROM unnest($1::text[]) t",
                    ["go", "go", "py", "go"],
                )
            await _stamp(settings, "0009")

            await asyncio.to_thread(upgrade_database, settings)

            for schema in ("articles_g1", "articles_g2"):
                rows = await conn.fetch(f"SELECT tag, articles FROM {schema}.tag_counts")
                assert {r["tag"]: r["articles"] for r in rows} == {"go": 3, "py": 1}, schema
        finally:
            await conn.close()


SCHEMAS = ("users_g1", "users_g2")


async def _restore_unique_keys(conn: asyncpg.Connection, schema: str) -> None:
    """Put back on ``schema``'s users the unique keys that migrations up to 0008 left."""
    await conn.execute(
        f'ALTER TABLE "{schema}".users ADD CONSTRAINT users_email_key UNIQUE (email); '
        f'CREATE UNIQUE INDEX users_phone_uniq ON "{schema}".users (phone) '
        "WHERE phone IS NOT NULL; "
        f'CREATE UNIQUE INDEX users_wechat_openid_uniq ON "{schema}".users (wechat_openid) '
        "WHERE wechat_openid IS NOT NULL; "
        f'DROP INDEX "{schema}".users_by_email, "{schema}".users_by_phone, '
        f'"{schema}".users_by_wechat_openid'
    )


async def test_0011_adds_user_keys_and_marks_no_existing_user_erased(run_id: str) -> None:
    async with isolated(run_id, "mig11") as settings:
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        async with engine.begin() as sa:
            await create_generation(sa, "users", 2, activate=False)
        await engine.dispose()
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # The shape before 0011: no key table, no erased users column.
            await conn.execute("DROP TABLE user_keys")
            for schema in SCHEMAS:
                await conn.execute(f'ALTER TABLE "{schema}".users DROP COLUMN erased_at')
            await conn.execute(USER, "a@example.com", "+8613800000001")
            await _stamp(settings, "0010")

            await asyncio.to_thread(upgrade_database, settings)

            for schema in SCHEMAS:
                erased = await conn.fetchval(
                    f'SELECT count(*) FROM "{schema}".users WHERE erased_at IS NOT NULL'
                )
                assert erased == 0, schema
            assert await conn.fetchval("SELECT count(*) FROM users_g1.users") == 1
            assert await conn.fetchval("SELECT count(*) FROM user_keys") == 0
        finally:
            await conn.close()


async def test_0017_counts_each_collector_once(run_id: str) -> None:
    async with isolated(run_id, "mig17") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            # Before 0017: counts by entries. One reader holds the first article in two
            # collections, another in one; the second article is in none but says 1.
            first, second, author, fan, other = [
                str(await conn.fetchval("SELECT gen_random_uuid()")) for _ in range(5)
            ]
            await conn.execute(
                "INSERT INTO interactions_g1.article_stats "
                "(article_id, author_id, published_at, visible, collect_cnt) "
                "VALUES ($1, $3, now(), true, 3), ($2, $3, now(), true, 1)",
                first,
                second,
                author,
            )
            await conn.execute(
                "INSERT INTO interactions_g1.collection_items "
                "(collection_id, article_id, user_id, added_at) "
                "SELECT gen_random_uuid(), $1, u, now() FROM unnest($2::uuid[]) u",
                first,
                [fan, fan, other],
            )
            await _stamp(settings, "0016")

            await asyncio.to_thread(upgrade_database, settings)

            rows = await conn.fetch(
                "SELECT article_id::text AS a, collect_cnt FROM interactions_g1.article_stats"
            )
            assert {r["a"]: r["collect_cnt"] for r in rows} == {first: 2, second: 0}
        finally:
            await conn.close()


async def test_0018_gives_every_social_generation_its_erased_users(run_id: str) -> None:
    async with isolated(run_id, "mig18") as settings:
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        async with engine.begin() as sa:
            await create_generation(sa, "social", 2, activate=False)
        await engine.dispose()
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await conn.execute("DROP TABLE social_g1.erased_users, social_g2.erased_users")
            await _stamp(settings, "0017")

            await asyncio.to_thread(upgrade_database, settings)

            for schema in ("social_g1", "social_g2"):
                found = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.erased_users")
                assert found is not None, schema
        finally:
            await conn.close()


async def test_0019_gives_every_interactions_generation_partitioned_read_marks(
    run_id: str,
) -> None:
    async with isolated(run_id, "mig19") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await conn.execute(
                "DROP INDEX interactions_g1.read_marks_by_part; "
                "ALTER TABLE interactions_g1.read_marks DROP COLUMN part"
            )
            await _stamp(settings, "0018")

            await asyncio.to_thread(upgrade_database, settings)

            found = await conn.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'interactions_g1' "
                "AND indexname = 'read_marks_by_part'"
            )
            assert found is not None
            assert found.endswith("(part, counted_at)")
        finally:
            await conn.close()


async def _username_keys_after(
    run_id: str, revision: str, before: str, held: list[str]
) -> list[str]:
    """The username keys ``held`` (by as many accounts, in that order) once ``revision``
    has run on them."""
    async with isolated(run_id, f"mig{revision}") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            owners = [str(uuid.uuid4()) for _ in held]
            for owner, key in zip(owners, held, strict=True):
                await conn.execute(
                    "INSERT INTO reservations (kind, value, owner_id, status) "
                    "VALUES ('username', $1, $2, 'confirmed')",
                    key,
                    owner,
                )
            await _stamp(settings, before)

            await _upgrade(settings, revision)

            rows = await conn.fetch(
                "SELECT owner_id, value FROM reservations WHERE kind = 'username' "
                "AND owner_id = ANY($1::text[])",
                owners,
            )
            now = {r["owner_id"]: r["value"] for r in rows}
            return [now[owner] for owner in owners]
        finally:
            await conn.close()


async def test_0027_rewrites_username_keys_with_the_blank_braille_cell_as_a_space(
    run_id: str,
) -> None:
    held = ["wangfang", "wangfang\u2800", "mary\u2800\u2800ann"]
    # The name a look-alike (the second, taken before 0027) copied goes on naming the
    # account that had it.
    assert await _username_keys_after(run_id, "0027", "0026", held) == [
        "wangfang",
        "wangfang\u2800",
        "mary ann",
    ]


async def test_0025_rewrites_username_keys_without_the_characters_that_show_nothing(
    run_id: str,
) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    held = [family, "carol", "carol\u200c"]
    # The name a look-alike (the third, taken before 0025) copied goes on naming the
    # account that had it.
    assert await _username_keys_after(run_id, "0025", "0024", held) == [
        "\U0001f468\U0001f469\U0001f467",
        "carol",
        "carol\u200c",
    ]
