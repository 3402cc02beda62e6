"""When ``bloghub replay`` switches a generation in, and what ``replay activate | drop``
allow: a replay whose builder is held back does not switch until the new generation has
reached the log's end (a reader never sees less after the switch than before it), a steady
write stream does not keep it from switching, a migrated projector's generations are
neither activated nor dropped, a refused ``--all`` changes nothing, and the first search
replay can be undone."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.adapters.search_indexes import alias_name, index_name
from bloghub.events.base import Event
from bloghub.events.log import EventLog
from bloghub.events.social import UserFollowed
from bloghub.ids import new_id_str
from bloghub.ops.generations_admin import (
    ReplayRefused,
    mark_built,
    prepare_generation,
    switch_in,
)
from bloghub.ops.replay import activate_checked, building_stores, close_stores
from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting
from tests.e2e.test_ops_cli import bloghub, refused, registry
from tests.integration.test_notifications import listening as subscribed_to
from tests.integration.test_replay_resume import replay_process
from tests.support import (
    append_events,
    append_registrations,
    second_database,
    until_applied,
    wait_until,
)

# Under the former bound of 1,000 events: a replay of it used to switch at once.
EVENTS = 300
HOLD_S = 6.0  # how long the builder is held back


@contextlib.asynccontextmanager
async def checkpoints_locked(settings: Settings) -> AsyncIterator[None]:
    """No projector can move a checkpoint (it waits), as with a slow or stuck builder;
    reads of the checkpoints go on."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE projector_checkpoints IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


class Reader:
    """Reads the users read model of whichever generation the registry says serves, as an
    API process does, every few milliseconds: (when, generation, accounts it holds)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.seen: list[tuple[float, int, int]] = []

    async def look(self) -> None:
        generation = await self._conn.fetchval(
            "SELECT generation FROM projector_generations "
            "WHERE projector = 'users' AND state = 'active'"
        )
        count = await self._conn.fetchval(f"SELECT count(*) FROM users_g{generation}.users")
        self.seen.append((time.monotonic(), int(generation), int(count)))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.look()
            await asyncio.sleep(0.02)


async def _ended(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    async def ended() -> bool:
        return process.poll() is not None

    try:
        await wait_until(ended, timeout_s=timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
    return int(process.wait())


async def test_a_held_back_replay_switches_only_at_the_logs_end(
    run_id: str, tmp_path: Path
) -> None:
    async with isolated(run_id, "rsheld", generations_poll_s=0.5) as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            await append_registrations(log, EVENTS, tag=f"held-{run_id}")
        finally:
            await log.close()
        conn = await asyncpg.connect(s.asyncpg_dsn)
        try:
            async with projecting(s, "users"):
                await until_applied(s, "users", EVENTS)
                reader = Reader(conn)
                stop = asyncio.Event()
                reading = asyncio.create_task(reader.run(stop))
                try:
                    async with checkpoints_locked(s):
                        replay = replay_process(s, "users", log_file=tmp_path / "replay.log")
                        await asyncio.sleep(HOLD_S)
                        released = time.monotonic()
                    code = await _ended(replay, timeout_s=120)
                finally:
                    stop.set()
                    await reading
                await reader.look()
        finally:
            await conn.close()
        out = (tmp_path / "replay.log").read_text()
        assert code == 0, out
        assert await registry(s, "users") == {1: "retired", 2: "active"}
        generations = [g for _, g, _ in reader.seen]
        assert generations[0] == 1, reader.seen
        assert generations[-1] == 2, reader.seen
        first_switched = next(t for t, g, _ in reader.seen if g == 2)
        assert first_switched > released, "switched while the builder had applied nothing"
        # Every read, before and right after the switch, saw every account.
        assert {c for _, _, c in reader.seen} == {EVENTS}, [
            (g, c) for _, g, c in reader.seen if c != EVENTS
        ]


async def test_a_steady_write_stream_does_not_keep_a_replay_from_switching(
    run_id: str, tmp_path: Path
) -> None:
    async with isolated(run_id, "rsstream", generations_poll_s=0.5) as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        conn = await asyncpg.connect(s.asyncpg_dsn)
        try:
            await append_registrations(log, 2_000, tag=f"stream-{run_id}")
            stop = asyncio.Event()

            async def write() -> None:
                n = 0
                while not stop.is_set():
                    await append_registrations(log, 5, tag=f"more-{n}-{run_id}")
                    n += 1
                    await asyncio.sleep(0.05)

            async with projecting(s, "users"):
                await until_applied(s, "users", 2_000)
                reader = Reader(conn)
                tasks = [asyncio.create_task(write()), asyncio.create_task(reader.run(stop))]
                try:
                    replay = replay_process(s, "users", log_file=tmp_path / "replay.log")
                    code = await _ended(replay, timeout_s=120)
                finally:
                    stop.set()
                    await asyncio.gather(*tasks)
        finally:
            await conn.close()
            await log.close()
        assert code == 0, (tmp_path / "replay.log").read_text()
        assert await registry(s, "users") == {1: "retired", 2: "active"}
        assert 2 in {g for _, g, _ in reader.seen}, "switched while the writes went on"
        # The first read after the switch saw every account a read of the old generation
        # had seen by the replay's previous step (a step is 1 s; the old generation goes on
        # applying the stream up to the switch, as the new one does after it).
        at, first_new = next((t, c) for t, g, c in reader.seen if g == 2)
        before = [c for t, g, c in reader.seen if g == 1 and t < at - 1.5]
        assert before, reader.seen[:5]
        assert first_new >= max(before), (max(before), first_new)


@pytest.fixture(scope="module")
async def migrated(run_id: str) -> AsyncIterator[Settings]:
    """A private store whose comments projector is migrated (phase 2) to another database,
    with a second generation of comments registered before the migration started."""
    async with isolated(run_id, "rsmig") as s, second_database(s) as target:
        stores = building_stores(s, pool_size=1)
        try:
            await prepare_generation(stores, "comments")
        finally:
            await close_stores(stores)
        ran = await bloghub(s, "migrate", "start", "comments", "--to", target)
        assert ran.code == 0, ran.out
        assert "phase 2" in " ".join(ran.out.split()), ran.out
        yield s


async def test_a_migrated_projector_is_neither_activated_nor_dropped(
    migrated: Settings,
) -> None:
    before = await registry(migrated, "comments")
    assert before == {1: "active", 2: "building"}
    for command in (("activate", "comments", "2"), ("drop", "comments", "2")):
        ran = await bloghub(migrated, "replay", *command)
        refused(ran, "comments is migrated", "bloghub migrate status")
    assert await registry(migrated, "comments") == before


async def test_a_refused_replay_of_all_changes_nothing(migrated: Settings) -> None:
    stores = building_stores(migrated, pool_size=1)
    try:
        await prepare_generation(stores, "users")
        await mark_built(stores, "users", 2)
    finally:
        await close_stores(stores)
    before = {name: await registry(migrated, name) for name in ("users", "articles", "social")}
    assert before["users"] == {1: "active", 2: "built"}
    refused(await bloghub(migrated, "replay", "--all", "--no-swap"), "comments is migrated")
    after = {name: await registry(migrated, name) for name in ("users", "articles", "social")}
    assert after == before


async def test_the_first_search_replay_is_undone_by_activating_generation_1(
    migrated: Settings,
) -> None:
    s = migrated
    ran = await bloghub(s, "replay", "search")
    assert ran.code == 0, ran.out
    # Its last table ends its line: what a log or a pipe gets next starts on its own.
    assert ran.stdout.endswith("┘\n"), ran.stdout[-200:]
    assert await registry(s, "search") == {2: "active"}
    status = await bloghub(s, "replay", "--status")
    cells = [re.split(r"[\s│┃|]+", row.strip(" │┃|")) for row in status.out.splitlines()]
    assert ["search", "1", "retired"] in [c[:3] for c in cells], status.out

    ran = await bloghub(s, "replay", "activate", "search", "1")
    assert ran.code == 0, ran.out
    assert await registry(s, "search") == {1: "active", 2: "retired"}
    stores = building_stores(s, pool_size=1)
    try:
        aliased = await stores.search.indices.get_alias(name=alias_name(s.prefix, "search"))
        assert set(aliased) == {index_name(s.prefix, "search", 1)}
    finally:
        await close_stores(stores)
    ran = await bloghub(s, "replay", "activate", "search", "2")  # and forth again
    assert ran.code == 0, ran.out
    assert await registry(s, "search") == {1: "retired", 2: "active"}


async def test_activation_far_behind_advises_what_works(run_id: str) -> None:
    async with isolated(run_id, "rsadvice") as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            await append_registrations(log, 3, tag=f"advice-{run_id}")
        finally:
            await log.close()
        strict = s.model_copy(update={"replay_caught_up_events": 0})
        stores = building_stores(s, pool_size=1)
        try:
            await switch_in(stores, await prepare_generation(stores, "users"))
            assert await registry(s, "users") == {1: "retired", 2: "active"}
            # A retired generation: nothing writes it, a replay builds another one.
            with pytest.raises(ReplayRefused) as retired:
                await activate_checked(strict, "users", 1)
            said = " ".join(str(retired.value).split())
            assert "3 events behind" in said, said
            assert "`bloghub replay users` builds generation 3" in said, said
            assert "catch it up" not in said, said
            # A generation being built: the replay resumes it.
            await prepare_generation(stores, "users")
            with pytest.raises(ReplayRefused) as building:
                await activate_checked(strict, "users", 3)
            said = " ".join(str(building.value).split())
            assert "`bloghub replay users` resumes it" in said, said
        finally:
            await close_stores(stores)


async def test_a_notification_made_while_a_replay_switches_in_is_pushed_once(
    run_id: str, tmp_path: Path
) -> None:
    """For its grace after a replay switches a generation in, the old one still applies
    beside the new one (requests pinned to it wait on it), and both make the follow's
    notification: it reaches the followee's sockets once, not once per generation."""
    async with isolated(run_id, "rspush", generations_poll_s=0.5, read_wait_s=15.0) as s:
        redis = make_redis(s.redis_url.get_secret_value())
        pushes: list[dict[str, object]] = []
        listening = await subscribed_to(redis, notifications_channel(s.prefix), pushes)
        followee = new_id_str()
        try:
            async with projecting(s, "notifications"):
                await append_events_once(
                    s, UserFollowed(follower_id=new_id_str(), followee_id=followee)
                )
                await until_applied(s, "notifications", 1)
                replay = replay_process(s, "notifications", log_file=tmp_path / "replay.log")
                code = await _ended(replay, timeout_s=120)
                assert code == 0, (tmp_path / "replay.log").read_text()
                assert await registry(s, "notifications") == {1: "retired", 2: "active"}
                await asyncio.sleep(2)  # the switch seen (polled every 0.5 s): both run
                late = new_id_str()
                await append_events_once(s, UserFollowed(follower_id=late, followee_id=followee))

                async def pushed() -> bool:
                    return any(p.get("actor_id") == late for p in pushes)

                await wait_until(pushed, timeout_s=30)

                async def made_by_both() -> bool:
                    # Both generations made the notification (each in its own schema), so
                    # each had its push to make.
                    async with pg(s) as conn:
                        made = [
                            await conn.fetchval(
                                f"SELECT count(*) FROM notifications_g{g}.notifications "
                                "WHERE actor_id = $1",
                                late,
                            )
                            for g in (1, 2)
                        ]
                    return made == [1, 1]

                await wait_until(made_by_both, timeout_s=10)  # inside the grace (15.5 s)
                await asyncio.sleep(2)  # a second push would have come by now
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await redis.aclose()
        assert [p["kind"] for p in pushes if p.get("actor_id") == late] == ["follower"]


async def append_events_once(settings: Settings, event: Event) -> None:
    log = EventLog.from_settings(settings, timeout_s=10)
    await log.start()
    try:
        await append_events(log, [event])
    finally:
        await log.close()
