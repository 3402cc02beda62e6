"""Migration 0021 indexes the write-side index's personal keys by owner, as the tables
declare it, and what a command reads of an account's keys is answered from it."""

from __future__ import annotations

import asyncio

import asyncpg

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.reservations import HELD_BY_SQL, Reservations
from bloghub.adapters.postgres.tables import PERSONAL_KINDS_SQL, reservations
from bloghub.adapters.postgres.user_keys import PERSONAL_KEY_KINDS
from bloghub.cli import upgrade_database
from tests.conftest import isolated
from tests.integration.test_migrations import _stamp

INDEX = "reservations_personal_by_owner"


def test_the_index_covers_every_personal_kind_and_the_lookup_repeats_its_predicate() -> None:
    declared = next(i for i in reservations.indexes if i.name == INDEX)
    where = str(declared.dialect_options["postgresql"]["where"])
    assert where == PERSONAL_KINDS_SQL
    for kind in PERSONAL_KEY_KINDS:
        assert f"'{kind}'" in where, kind
    assert where in HELD_BY_SQL


async def test_0021_indexes_personal_keys_by_owner(run_id: str) -> None:
    async with isolated(run_id, "mig21") as settings:
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        try:
            await conn.execute(f"DROP INDEX public.{INDEX}")
            await _stamp(settings, "0020")

            await asyncio.to_thread(upgrade_database, settings)

            made = await conn.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND indexname = $1",
                INDEX,
            )
            assert made is not None
            assert made.endswith(
                "(owner_id, kind) WHERE (kind = ANY (ARRAY['email'::text, 'phone'::text, "
                "'wechat'::text, 'username'::text]))"
            ), made
            valid = await conn.fetchval(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = $1::regclass",
                f"public.{INDEX}",
            )
            assert valid is True

            # The lookup, prepared and planned generically as the pool runs it, uses it.
            await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
            await conn.execute(f"PREPARE held(text, text) AS {HELD_BY_SQL}")
            rows = await conn.fetch("EXPLAIN (FORMAT TEXT) EXECUTE held('u1', 'phone')")
            plan = "\n".join(r[0] for r in rows)
            assert INDEX in plan, plan
            assert "$1" in plan, plan  # the generic plan, not one for these values
        finally:
            await conn.close()


async def test_held_by_lists_what_an_owner_holds_of_a_kind(run_id: str) -> None:
    async with isolated(run_id, "held21") as settings:
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        try:
            index = Reservations(engine)
            await index.reserve("phone", "+8613800000002", "u1")
            await index.reserve("phone", "+8613800000001", "u1")
            await index.reserve("phone", "+8613800000003", "u2")
            await index.reserve("username", "ada", "u1")
            await index.confirm("phone", "+8613800000001", "u1", "0-1")

            assert await index.held_by("phone", "u1") == ["+8613800000001", "+8613800000002"]
            assert await index.held_by("username", "u1") == ["ada"]
            assert await index.held_by("email", "u1") == []
        finally:
            await engine.dispose()
