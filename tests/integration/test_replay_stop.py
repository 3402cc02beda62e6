"""Ctrl-C at the start of ``bloghub replay NAME``, when an earlier ``--no-swap`` run left its
generation built (caught up, ready to switch): the replay stops without switching reads,
says how to resume, and exits 1; the generation that served reads still serves them, and
the same command then resumes the generation and switches it in."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from bloghub.events.log import EventLog
from bloghub.ops.generations_admin import ReplayRefused, drop_generation
from bloghub.ops.replay import ReplayPlan, building_stores, close_stores, replay
from bloghub.ops.replay_progress import ReplayProgress
from bloghub.settings import Settings
from tests.conftest import isolated, projecting
from tests.e2e.test_ops_cli import bloghub, registry
from tests.integration.test_replay_resume import replay_process
from tests.support import append_registrations, until_applied, users_in_read_model, wait_until

ACCOUNTS = 60


@contextlib.asynccontextmanager
async def registry_locked(settings: Settings) -> AsyncIterator[None]:
    """No one can write the generations registry until the block ends (reads go on): a
    replay starting up waits there, as it prepares its generation."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE projector_generations IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


async def replay_waits_on_a_lock(settings: Settings, application: str = "bloghub-replay") -> bool:
    """Whether a connection of ``application`` ("%": any) waits on a lock."""
    # A connection of its own: a transaction sees pg_stat_activity as it first read it.
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name LIKE $1 AND wait_event_type = 'Lock'",
            application,
        )
    finally:
        await conn.close()
    return bool(waiting)


async def users_applied(settings: Settings, accounts: int, tag: str) -> None:
    """``accounts`` registrations in the log, applied by the users projector."""
    log = EventLog.from_settings(settings, timeout_s=10)
    await log.start()
    try:
        await append_registrations(log, accounts, tag=tag)
    finally:
        await log.close()
    async with projecting(settings, "users"):
        await until_applied(settings, "users", accounts)


@contextlib.asynccontextmanager
async def replay_held(settings: Settings, log_file: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``bloghub replay users`` started and held as it prepares its generation, waiting on
    the registry, until the block ends (killed if the block fails)."""
    async with registry_locked(settings):
        replay = replay_process(settings, "users", log_file=log_file)
        try:
            await wait_until(lambda: replay_waits_on_a_lock(settings), timeout_s=60)
            yield replay
        except BaseException:
            replay.kill()
            replay.wait()
            raise


async def test_ctrl_c_before_the_switch_leaves_a_built_generation_unswitched(
    run_id: str, tmp_path: Path
) -> None:
    async with isolated(run_id, "rstop") as s:
        await users_applied(s, ACCOUNTS, f"stop-{run_id}")
        built = await bloghub(s, "replay", "users", "--no-swap")
        assert built.code == 0, built.out
        assert await registry(s, "users") == {1: "active", 2: "built"}

        out = tmp_path / "replay.log"
        async with replay_held(s, out) as replay:
            replay.send_signal(signal.SIGINT)  # the operator's Ctrl-C
        code = await asyncio.to_thread(replay.wait, 120)

        said = " ".join(out.read_text().split())
        assert code == 1, said
        assert "stopped: run the same command again to resume" in said, said
        assert "switched" not in said, said
        # Reads stay with generation 1, which holds every account.
        assert (await registry(s, "users"))[1] == "active"
        assert await users_in_read_model(s, 1) == ACCOUNTS
        # As it says: the same command resumes the generation and switches it in.
        resumed = await bloghub(s, "replay", "users")
        assert resumed.code == 0, resumed.out
        assert await registry(s, "users") == {1: "retired", 2: "active"}


async def _a_lock_is_waited_for(settings: Settings) -> bool:
    return await replay_waits_on_a_lock(settings, "%")


async def test_a_replay_stopped_mid_batch_ends_on_what_its_builder_applied(
    run_id: str,
) -> None:
    """Stopped while its builder applies a batch (held here on a lock the batch needs), the
    replay lets the builder finish the batch and shows what it then holds, not the figures
    measured before the batch landed (0 done of a generation applied whole)."""
    async with isolated(run_id, "stopmid") as s:
        await users_applied(s, ACCOUNTS, "mid")
        stop = asyncio.Event()
        shown: list[Sequence[ReplayProgress]] = []
        conn = await asyncpg.connect(s.asyncpg_dsn)
        try:
            locked = conn.transaction()
            await locked.start()
            # The users projector confirms each account's email in the index: its batch
            # waits here until the lock goes.
            await conn.execute("LOCK TABLE public.reservations IN EXCLUSIVE MODE")
            plan = ReplayPlan(names=["users"])
            running = asyncio.create_task(replay(s, plan, show=shown.append, stop=stop))

            async def held() -> bool:
                return bool(shown) and await _a_lock_is_waited_for(s)

            await wait_until(held, timeout_s=60)
            assert shown[-1][0].done == 0
            stop.set()
            await asyncio.sleep(0.5)
            await locked.rollback()
            final = await asyncio.wait_for(running, timeout=60)
        finally:
            await conn.close()
        (progress,) = final
        assert progress.state == "building"
        assert (progress.done, progress.total) == (ACCOUNTS, ACCOUNTS)
        assert list(shown[-1]) == final


async def test_a_replay_whose_generation_is_dropped_by_force_stops_saying_so(
    run_id: str,
) -> None:
    """`replay drop NAME GEN --force` of the generation a running replay builds: the
    replay stops and says why, rather than measure a generation that is no more for ever
    (holding its lease, publishing 0 done)."""
    async with isolated(run_id, "dropmid") as s:
        await users_applied(s, ACCOUNTS, "dropmid")
        conn = await asyncpg.connect(s.asyncpg_dsn)
        shown: list[Sequence[ReplayProgress]] = []
        try:
            locked = conn.transaction()
            await locked.start()
            await conn.execute("LOCK TABLE public.reservations IN EXCLUSIVE MODE")
            running = asyncio.create_task(
                replay(s, ReplayPlan(names=["users"]), show=shown.append, stop=asyncio.Event())
            )

            async def held() -> bool:
                return bool(shown) and await _a_lock_is_waited_for(s)

            await wait_until(held, timeout_s=60)
            generation = shown[-1][0].generation
            stores = building_stores(s, pool_size=1)
            try:
                # The drop waits for the builder's batch, which waits for the lock.
                dropping = asyncio.create_task(
                    drop_generation(stores, "users", generation, force=True)
                )
                await asyncio.sleep(0.3)
                await locked.rollback()
                await asyncio.wait_for(dropping, timeout=60)
            finally:
                await close_stores(stores)
        finally:
            await conn.close()
        with pytest.raises(ReplayRefused, match="dropped while it was built"):
            await asyncio.wait_for(running, timeout=60)
