"""The operators' commands (``bloghub lag | project | replay | migrate``) as an operator runs
them, on a private prefix and database: every projector's consumer group is watched, and a
request the state does not allow is refused in one clear line (exit 2), with nothing
changed and no traceback."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bloghub.adapters.postgres.engine import make_engine
from bloghub.ops.generations_admin import drop_generation, prepare_generation
from bloghub.ops.lag import LagReader
from bloghub.ops.monitor import watched_groups
from bloghub.ops.replay import building_stores, close_stores
from bloghub.ops.replay_lease import ReplayLeases, lease_holder, lease_key
from bloghub.ops.replay_progress import ReplayProgress, publish
from bloghub.projections.catalog import PROJECTOR_FAMILIES
from bloghub.projections.runner_config import group_id
from bloghub.settings import Settings
from tests.conftest import isolated, pg
from tests.support import projector_env


@dataclass(frozen=True)
class Ran:
    code: int
    out: str  # both streams
    stdout: str = ""


async def bloghub(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Ran:
    env = {
        **projector_env(settings, batch=100),
        "BLOGHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "COLUMNS": "200",  # rich's width when the output is not a terminal
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bloghub.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Ran(process.returncode, err.decode() + out.decode(), out.decode())


def refused(ran: Ran, *words: str) -> None:
    assert ran.code == 2, ran.out
    assert "refused:" in ran.out, ran.out
    assert "Traceback" not in ran.out, ran.out
    # One line, however long: a log search or an alert reads it whole.
    (line,) = [line for line in ran.out.splitlines() if "refused:" in line]
    for word in words:
        assert word in line, ran.out


async def registry(settings: Settings, name: str) -> dict[int, str]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT generation, state FROM projector_generations WHERE projector = $1", name
        )
    return {r["generation"]: r["state"] for r in rows}


@pytest.fixture(scope="module")
async def own(run_id: str) -> AsyncIterator[Settings]:
    async with isolated(run_id, "opscli") as s:
        yield s


async def test_every_projector_is_watched_even_with_no_registered_generation(
    own: Settings,
) -> None:
    assert await registry(own, "search") == {}  # no row until its first replay
    engine = make_engine(own.sqlalchemy_url, pool_size=1)
    try:
        watched = await watched_groups(engine, own.prefix)
    finally:
        await engine.dispose()
    assert {w.name for w in watched} == set(PROJECTOR_FAMILIES)
    search = next(w for w in watched if w.name == "search")
    assert (search.generation, search.state) == (1, "active")
    # `bloghub lag` shows the groups the projector processes run, search ones included.
    ran = await bloghub(own, "lag")
    assert ran.code == 0, ran.out
    for name in ("search", "user_search", "users"):
        assert group_id(own.prefix, name, 1) in ran.out, ran.out


async def test_a_lag_reader_started_and_closed_at_once_closes_cleanly(own: Settings) -> None:
    for _ in range(3):
        reader = LagReader(own.kafka_bootstrap, own.prefix)
        await reader.start()
        await reader.close()


async def test_migrating_an_unknown_projector_names_only_those_that_can_move(
    own: Settings,
) -> None:
    target = own.sqlalchemy_url.rsplit("/", 1)[0] + "/never_made"
    ran = await bloghub(own, "migrate", "start", "nosuch", "--to", target)
    refused(ran, "'nosuch' has no PostgreSQL read model to migrate", "articles, social")
    movable = " ".join(ran.out.split()).split("those that do:", 1)[1]
    assert "users" not in movable, ran.out  # refused whenever asked: its reads join the index


async def test_validating_since_a_time_to_come_is_refused(own: Settings) -> None:
    """Nothing has changed since then: the pass compared only the tables without an
    updated_at, and said all was well."""
    ran = await bloghub(own, "migrate", "validate", "articles", "--since", "2999-01-01T00:00:00Z")
    refused(ran, "--since 2999-01-01T00:00:00+00:00 is in the future")


async def test_migrate_status_with_no_migrations(own: Settings) -> None:
    ran = await bloghub(own, "migrate", "status")
    assert ran.code == 0, ran.out
    assert "no migrations" in ran.out
    assert "Traceback" not in ran.out


async def test_an_unknown_projector_is_refused_alike_by_project_and_replay(
    own: Settings,
) -> None:
    for command in ("project", "replay"):
        ran = await bloghub(own, command, "nosuch")
        refused(ran, "nosuch", "known: users")
        longer = f"nosuch{'x' * 300}"  # past any console's width
        refused(await bloghub(own, command, longer), longer, "known: users")
        # On stderr, as the argument parser's own refusals are: stdout is the answer.
        assert ran.stdout == "", ran.stdout
    # What is refused is said as sent, never read as the console's markup (a traceback).
    marked = await bloghub(own, "project", "x[/y]")
    refused(marked, "x[/y]")
    for command in ("project", "replay"):  # a name across lines is quoted on one
        refused(await bloghub(own, command, "a\nb\rc"), "'a\\nb\\rc'")
    phase = await bloghub(own, "migrate", "phase", "articles", "x")
    refused(phase, "a phase is")
    assert phase.stdout == "", phase.stdout


async def test_replay_arguments_that_do_not_go_together_are_refused_saying_why(
    own: Settings,
) -> None:
    """Each was taken, or refused with the usage alone: ``--all`` beside names rebuilt
    every projector, ``--workers 0`` ran with one, a missing generation said nothing."""
    before = await registry(own, "users")
    refused(await bloghub(own, "replay", "--all", "users"), "--all, not both: users")
    refused(await bloghub(own, "replay", "--status", "users"), "--status takes no")
    refused(await bloghub(own, "replay", "drop", "users"), "drop takes NAME GEN, not users")
    refused(await bloghub(own, "replay", "verify", "users", "1"), "verify takes NAME GEN_A GEN_B")
    refused(await bloghub(own, "replay", "activate", "users", "x"), "not 'x'")
    # A drop line mistyped without its action rebuilt users and switched it in.
    refused(await bloghub(own, "replay", "users", "--force"), "--force goes with drop only")
    refused(await bloghub(own, "replay", "activate", "users", "1", "--force"), "drop only")
    for workers in ("0", "-1"):
        ran = await bloghub(own, "replay", "users", "--workers", workers)
        assert ran.code == 2, ran.out
        assert f"argument --workers: at least 1, not {workers}" in ran.out, ran.out
    assert await registry(own, "users") == before


async def test_a_generation_that_does_not_exist_is_neither_dropped_nor_verified(
    own: Settings,
) -> None:
    before = await registry(own, "users")
    refused(await bloghub(own, "replay", "drop", "users", "7"), "users has no generation 7")
    refused(await bloghub(own, "replay", "verify", "users", "1", "9"), "no generation 9")
    refused(await bloghub(own, "replay", "verify", "search", "1", "9"), "no generation 9")
    assert await registry(own, "users") == before


async def test_an_unreachable_target_is_refused_and_nothing_is_registered(
    own: Settings,
) -> None:
    base = own.sqlalchemy_url.rsplit("/", 1)[0]
    for target in (f"{base}/bloghub_nonexist_{own.prefix[:9]}", f"{base.rsplit(':', 1)[0]}:1/x"):
        ran = await bloghub(own, "migrate", "start", "comments", "--to", target)
        refused(ran, "cannot reach the target")
        assert "bloghub:bloghub@" not in ran.out, "the password is not shown"
    status = await bloghub(own, "migrate", "status")
    assert status.code == 0, status.out
    assert "no migrations" in status.out
    async with pg(own) as conn:
        assert await conn.fetchval("SELECT count(*) FROM projector_migrations") == 0


async def test_a_start_with_the_log_out_of_reach_registers_nothing(
    own: Settings, run_id: str
) -> None:
    """The fill reads the log: a start that cannot reach it says so and leaves nothing
    behind (a registered migration would hold the projector's replays until aborted)."""
    async with isolated(run_id, "opscli-to") as target:
        ran = await bloghub(
            own,
            "migrate",
            "start",
            "comments",
            "--to",
            target.sqlalchemy_url,
            env={"BLOGHUB_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        )
        assert ran.code == 2, ran.out
        assert "cannot reach Kafka" in ran.out.strip().splitlines()[-1], ran.out
        assert "Traceback" not in ran.out, ran.out
    async with pg(own) as conn:
        assert await conn.fetchval("SELECT count(*) FROM projector_migrations") == 0


async def test_a_generation_a_running_replay_builds_is_not_dropped_unless_forced(
    own: Settings,
) -> None:
    stores = building_stores(own, pool_size=1)
    other = ReplayLeases(stores.redis, own.prefix, ["interactions"])
    try:
        await prepare_generation(stores, "interactions")  # generation 2, building
        assert await other.take() is None  # a replay of interactions runs elsewhere
        refused(
            await bloghub(own, "replay", "drop", "interactions", "2"),
            "being built by a running replay",
            other.holder,
        )
        # A second replay of the same projector is refused, naming the one that runs.
        refused(
            await bloghub(own, "replay", "interactions", "--no-swap"),
            "interactions is being replayed already",
            other.holder,
        )
        await other.release()
        # A replay that died a moment ago still shows its progress: it may be resumed.
        await publish(
            stores.redis,
            own.prefix,
            ReplayProgress("interactions", 2, "building", 0, 10, None, None),
        )
        refused(
            await bloghub(own, "replay", "drop", "interactions", "2"), "running replay", "--force"
        )
        assert await registry(own, "interactions") == {1: "active", 2: "building"}
        ran = await bloghub(own, "replay", "drop", "interactions", "2", "--force")
        assert ran.code == 0, ran.out
        assert await registry(own, "interactions") == {1: "active"}
    finally:
        await other.release()
        if 2 in await registry(own, "interactions"):
            await drop_generation(stores, "interactions", 2, force=True)
        await close_stores(stores)


async def test_a_finished_replay_releases_its_lease(own: Settings) -> None:
    ran = await bloghub(own, "replay", "articles", "--no-swap")
    assert ran.code == 0, ran.out
    stores = building_stores(own, pool_size=1)
    try:
        assert await lease_holder(stores.redis, own.prefix, "articles") is None
        assert await registry(own, "articles") == {1: "active", 2: "built"}
        # Written by no one until it is switched in: its lag is what an operator deciding on
        # `activate` needs, so the lag views list it.
        engine = make_engine(own.sqlalchemy_url, pool_size=1)
        try:
            watched = {
                (w.name, w.generation): w.state for w in await watched_groups(engine, own.prefix)
            }
        finally:
            await engine.dispose()
        assert watched[("articles", 2)] == "built"
        lag = await bloghub(own, "lag")
        assert lag.code == 0, lag.out
        assert group_id(own.prefix, "articles", 2) in lag.out
        # Built, no replay running it: dropped without --force.
        await drop_generation(stores, "articles", 2)
    finally:
        await close_stores(stores)
    assert await registry(own, "articles") == {1: "active"}


async def test_leases_exclude_each_other_and_are_renewed(own: Settings) -> None:
    stores = building_stores(own, pool_size=1)
    first = ReplayLeases(stores.redis, own.prefix, ["social", "comments"], ttl_s=0.5)
    second = ReplayLeases(stores.redis, own.prefix, ["comments"], ttl_s=0.5)
    kept = asyncio.Event()
    try:
        assert await first.take() is None
        assert await second.take() == ("comments", first.holder)
        keeper = asyncio.create_task(first.keep(kept))
        await asyncio.sleep(1.5)  # three TTLs: only renewal keeps it
        assert await lease_holder(stores.redis, own.prefix, "comments") == first.holder
        assert first.lost is None
        kept.set()
        await keeper
        await first.release()
        assert await second.take() is None
    finally:
        await first.release()
        await second.release()
        await close_stores(stores)


async def test_the_lease_of_a_replay_killed_on_this_host_is_taken_over(own: Settings) -> None:
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    held = {"pid": dead.pid, "host": socket.gethostname(), "since": "a moment ago"}
    stores = building_stores(own, pool_size=1)
    leases = ReplayLeases(stores.redis, own.prefix, ["notifications"])
    try:
        await stores.redis.set(lease_key(own.prefix, "notifications"), json.dumps(held), ex=30)
        assert await lease_holder(stores.redis, own.prefix, "notifications") is None
        assert await leases.take() is None
        assert await lease_holder(stores.redis, own.prefix, "notifications") == leases.holder
    finally:
        await leases.release()
        await close_stores(stores)


async def test_the_repair_consumer_says_what_it_does_and_that_it_stopped(own: Settings) -> None:
    """It runs until stopped: with nothing to repair it printed nothing at all."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bloghub.cli",
        "migrate",
        "repair",
        env={**projector_env(own, batch=100), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert f"repairing the rows `migrate validate` sends to {own.prefix}.repair" in first.decode()
    process.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    assert "stopped: what was repaired is committed" in out.decode()
