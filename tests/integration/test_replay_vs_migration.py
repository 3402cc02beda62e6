"""A replay and a migration of one projector exclude each other: a replay switches its new
generation in on the main database, which would leave a migration of the generation it
replaces behind (the target no longer written while reads were said to come from it).
``migrate start`` refuses while a replay holds the projector's lease, and a replay that
finds a migration registered while it built refuses to switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from bloghub.adapters.postgres.migrations import all_migrations, register_migration
from bloghub.adapters.redis import make_redis
from bloghub.ops.replay_lease import ReplayLeases
from tests.conftest import isolated
from tests.e2e.test_ops_cli import bloghub, registry
from tests.integration.test_replay_stop import replay_held, users_applied
from tests.support import users_in_read_model

ACCOUNTS = 40


async def migrations_of(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await all_migrations(conn))
    finally:
        await engine.dispose()


async def test_a_migration_is_not_started_while_a_replay_holds_the_projector(
    run_id: str,
) -> None:
    async with isolated(run_id, "rvm_lease") as s:
        redis = make_redis(s.redis_url.get_secret_value())
        leases = ReplayLeases(redis, s.prefix, ["articles"])
        try:
            assert await leases.take() is None  # this process, replaying articles
            elsewhere = s.sqlalchemy_url.rsplit("/", 1)[0] + "/rvm_elsewhere"
            started = await bloghub(s, "migrate", "start", "articles", "--to", elsewhere)
        finally:
            await leases.release()
            await redis.aclose()
        said = " ".join(started.out.split())
        assert started.code == 2, said
        assert "articles is being replayed" in said, said
        assert "Traceback" not in said, said
        assert await migrations_of(s.sqlalchemy_url) == set(), "nothing registered"


async def test_a_replay_does_not_switch_over_a_migration_registered_while_it_built(
    run_id: str, tmp_path: Path
) -> None:
    async with isolated(run_id, "rvm_switch") as s:
        await users_applied(s, ACCOUNTS, f"rvm-{run_id}")
        async with replay_held(s, tmp_path / "replay.log") as replay:
            # Registered as a start that looked before the lease was taken would.
            engine = create_async_engine(s.sqlalchemy_url)
            try:
                async with engine.begin() as conn:
                    target = s.sqlalchemy_url.rsplit("/", 1)[0] + "/rvm_target"
                    await register_migration(conn, "users", 1, target)
            finally:
                await engine.dispose()
        code = await asyncio.to_thread(replay.wait, 120)

        said = " ".join((tmp_path / "replay.log").read_text().split())
        assert code == 2, said
        assert "users is migrated" in said, said
        assert "replay.switched" not in said, said
        assert (await registry(s, "users"))[1] == "active", "reads stay where the migration is"
        assert await users_in_read_model(s, 1) == ACCOUNTS
