"""A projector killed with SIGKILL mid-batch and restarted ends with exactly the state a
fresh replay of the log gives: nothing lost, nothing applied twice.

The users and tag-count tests below cannot see an event applied twice: a user row is
written once by its primary key, and the articles projector ignores a change whose version
its row has already passed, so the tag counts, moved only when an article row changes,
ignore it too. They would pass with the runner's checkpoint filter gone. The counting test
adds every event it applies to a count (``tests/counting_projector.py``), so the count
equals the log only if the checkpoint, kept in the batch's own transaction, stops every
event delivered again after a kill, a rebalance or a paused instance's late commit."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

import asyncpg

from bloghub.adapters.redis import make_redis
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, topic_for
from bloghub.projections.articles import ArticlesProjector
from bloghub.projections.heartbeat import read_heartbeats
from bloghub.projections.users import UsersProjector
from bloghub.settings import Settings
from tests.conftest import isolated, pg, read_topic
from tests.counting_projector import CountingProjector, counting_process, create_counts
from tests.freeze import frozen_mid_batch
from tests.support import (
    ArticleBook,
    append_events,
    append_registrations,
    applied,
    article_history,
    projector_process,
    replay_generation,
    wait_until,
)

EVENTS = 20_000


async def _rows(settings: Settings, schema: str) -> list[tuple[str, str, str, object]]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT id::text, email, password_hash, created_at FROM "{schema}".users ORDER BY id'
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


async def test_sigkill_mid_batch_then_restart_equals_replay(run_id: str, tmp_path: Path) -> None:
    async with isolated(run_id, "kill") as settings:
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        await append_registrations(log, EVENTS, tag="kill")
        await log.close()

        first = projector_process(settings, "users", log_file=tmp_path / "p.log", batch=300)

        async def started() -> bool:
            return await applied(settings, "users") > 1000

        await wait_until(started, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = await applied(settings, "users")
        assert 0 < at_kill < EVENTS, "the kill must land while events remain"

        second = projector_process(settings, "users", log_file=tmp_path / "p.log")
        try:

            async def finished() -> bool:
                return await applied(settings, "users") >= EVENTS

            await wait_until(finished, timeout_s=120)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, "SIGTERM drains and exits cleanly"

        live = await _rows(settings, "users_g1")
        assert len(live) == EVENTS
        assert len({email for _, email, _, _ in live}) == EVENTS

        await replay_generation(settings, UsersProjector, 2, until=EVENTS)
        assert await _rows(settings, "users_g2") == live


ARTICLE_EVENTS = 2000
TAGS = [f"tag-{i:02}" for i in range(40)]


async def _tag_counts(settings: Settings, schema: str) -> Counter[str]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(f'SELECT tag, articles FROM "{schema}".tag_counts')
        return Counter({r["tag"]: r["articles"] for r in rows})
    finally:
        await conn.close()


async def _recount(settings: Settings, schema: str) -> Counter[str]:
    """The counts worked out afresh from the article rows."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT tag, count(*) AS n FROM "{schema}".articles, unnest(published_tags) tag '
            "WHERE status = 'published' GROUP BY tag"
        )
        return Counter({r["tag"]: r["n"] for r in rows})
    finally:
        await conn.close()


async def test_tag_counts_exact_through_kills_and_rebalances(run_id: str, tmp_path: Path) -> None:
    """Two projector processes share the partitions. Each is killed with SIGKILL while it
    applies, two others take over and one of those leaves cleanly. Each tag then counts
    exactly the articles published under it."""
    async with isolated(run_id, "counts", topic_partitions=6) as settings:
        book = ArticleBook()
        history = article_history(book, random.Random(run_id), events=ARTICLE_EVENTS, tags=TAGS)
        log = EventLog.from_settings(settings, timeout_s=10)
        await log.start()
        await append_events(log, history)
        await log.close()
        total = len(history)

        started: list[subprocess.Popen[bytes]] = []

        def start() -> subprocess.Popen[bytes]:
            # Small batches: a process spends its time inside a batch, so a kill lands there.
            proc = projector_process(settings, "articles", log_file=tmp_path / "p.log", batch=100)
            started.append(proc)
            return proc

        async def reach(share: float) -> None:
            async def reached() -> bool:
                return await applied(settings, "articles") >= total * share

            await wait_until(reached, timeout_s=60)

        async def kill(proc: subprocess.Popen[bytes]) -> None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert await applied(settings, "articles") < total, "the kill lands mid-stream"

        async def leave(proc: subprocess.Popen[bytes]) -> int:
            proc.send_signal(signal.SIGTERM)
            return proc.wait(timeout=30)

        first, second = start(), start()
        try:
            await reach(0.15)
            # The second goes on with its own partitions until the group notices the first
            # is gone; it is killed meanwhile, so both wait out one session timeout.
            await kill(first)
            await reach(0.25)
            await kill(second)
            third, _ = start(), start()
            await reach(0.6)
            assert await leave(third) == 0, "SIGTERM drains and exits cleanly"
            await reach(1.0)
        finally:
            exits = [await leave(proc) for proc in started if proc.poll() is None]
        assert exits == [0] * len(exits), "SIGTERM drains and exits cleanly"
        assert await applied(settings, "articles") == total

        assert not await read_topic(settings, topic_for(settings.prefix, DLQ))
        live = await _tag_counts(settings, "articles_g1")
        assert live == book.published_per_tag()
        assert live == await _recount(settings, "articles_g1")

        await replay_generation(settings, ArticlesProjector, 2, until=total)
        assert await _tag_counts(settings, "articles_g2") == live


STREAM_CHUNK = 100
AHEAD = 4000


async def _stream(settings: Settings, projector: str, stop: asyncio.Event) -> int:
    """Registrations appended in small chunks until ``stop``, keeping about ``AHEAD``
    events not yet applied: every kill and rebalance then finds the projectors inside a
    batch, with the next one fetched. How many were appended."""
    log = EventLog.from_settings(settings, timeout_s=10)
    await log.start()
    sent = 0
    try:
        while not stop.is_set():
            if sent - await applied(settings, projector) >= AHEAD:
                await asyncio.sleep(0.02)
                continue
            await append_registrations(log, STREAM_CHUNK, tag=f"count-{sent}")
            sent += STREAM_CHUNK
    finally:
        await log.close()
    return sent


async def _counted(settings: Settings, schema: str) -> dict[tuple[str, int], int]:
    async with pg(settings) as conn:
        rows = await conn.fetch(f'SELECT topic, partition, events FROM "{schema}".counts')
        return {(r["topic"], r["partition"]): r["events"] for r in rows}


async def _checkpoints(settings: Settings, projector: str) -> dict[tuple[str, int], int]:
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT topic, partition, next_offset FROM projector_checkpoints "
            "WHERE projector = $1 AND generation = 1",
            projector,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


_LOCK_WAITERS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
"""


async def test_counts_exact_through_kills_and_rebalances(run_id: str, tmp_path: Path) -> None:
    """A count that adds each event it applies, kept by two or three worker processes at a
    time while events keep coming: instances join and leave while the others apply, two are
    killed with SIGKILL, and one is frozen inside a batch while its partitions pass to
    another, then wakes and commits. The count then equals the number of events in the
    log, partition by partition, and nothing is dead-lettered."""
    async with isolated(run_id, "counting", topic_partitions=6) as settings:
        schema = await create_counts(settings)
        name = CountingProjector.name
        redis = make_redis(settings.redis_url.get_secret_value())
        done = asyncio.Event()
        streaming = asyncio.create_task(_stream(settings, name, done))
        started: list[subprocess.Popen[bytes]] = []

        def start() -> subprocess.Popen[bytes]:
            log_file = tmp_path / f"p{len(started) + 1}.log"
            proc = counting_process(settings, log_file=log_file, batch=100)
            started.append(proc)
            return proc

        async def at_work(*procs: subprocess.Popen[bytes]) -> None:
            """Each of ``procs`` has joined the group and applied a batch of its own."""

            async def working() -> bool:
                beats = await read_heartbeats(redis, settings.prefix, name)
                busy = {b["pid"] for b in beats if b["applied"] > 0}
                return all(p.pid in busy for p in procs)

            await wait_until(working, timeout_s=60)

        async def reach(events: int) -> None:
            async def reached() -> bool:
                return await applied(settings, name) >= events

            await wait_until(reached, timeout_s=60)

        # Waited for in a thread, so the stream goes on meanwhile.
        async def kill(*procs: subprocess.Popen[bytes]) -> None:
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
            for proc in procs:
                await asyncio.to_thread(proc.wait, 10)

        async def leave(proc: subprocess.Popen[bytes]) -> int:
            proc.send_signal(signal.SIGTERM)
            return await asyncio.to_thread(proc.wait, 30)

        async def waits_for_a_lock() -> bool:
            async with pg(settings) as conn:
                return bool(await conn.fetchval(_LOCK_WAITERS))

        exits: list[int] = []
        try:
            try:
                a, b, c = start(), start(), start()  # each joins while the others apply
                await at_work(a, b, c)
                async with frozen_mid_batch(a, settings):
                    await kill(b, c)  # together: the group waits out one session timeout
                    d = start()
                    # The sessions of a, b and c lapse and d takes every partition over:
                    # it waits for the checkpoint rows a's open batch holds.
                    await wait_until(waits_for_a_lock, timeout_s=60)
                # a wakes and commits its batch; d then finds the checkpoint moved.
                exits.append(await leave(a))
                e = start()  # joins: d hands partitions over with batches in flight
                await at_work(d, e)
            finally:
                done.set()
                total = await streaming
            await reach(total)
        finally:
            exits += [await leave(proc) for proc in started if proc.poll() is None]
            await redis.aclose()
        assert exits == [0] * len(exits), "SIGTERM drains and exits cleanly"

        assert not await read_topic(settings, topic_for(settings.prefix, DLQ))
        counted = await _counted(settings, schema)
        assert sum(counted.values()) == total, f"{total} events in the log, counted {counted}"
        assert counted == await _checkpoints(settings, name)
