"""Phase 1 of a migration on the real services: a target behind the log may not start
being written live (the move is refused and says to fill it); the fill builds it from the
log, in its own consumer group, equal row for row to the live source; then the move goes
through and the live projector writes both."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from bloghub.events.articles import ArticleEvent
from bloghub.events.log import EventLog
from bloghub.migration_phases import MigrationRefused, Phase, Store
from bloghub.ops.generations_admin import LogEnds
from bloghub.ops.migrate import (
    FillPlan,
    MigrationStores,
    fill,
    migration_of,
    migration_stores,
    move,
    progress_of,
    start,
)
from bloghub.ops.migration_validator import Pair, full_pass
from bloghub.ops.replay_progress import ReplayProgress
from bloghub.settings import Settings
from tests.conftest import isolated, projecting
from tests.support import (
    ArticleBook,
    append_events,
    article_history,
    second_database,
    until_applied,
    wait_until,
)

EVENTS = 300
TAGS = list("abcdefg")


@dataclass
class Migrating:
    settings: Settings
    target_url: str
    ms: MigrationStores
    log: EventLog
    book: ArticleBook
    history: list[ArticleEvent]


@asynccontextmanager
async def migrating(
    run_id: str, name: str, seed: int, **overrides: Any
) -> AsyncIterator[Migrating]:
    """A private deployment whose articles projector has applied a history of ``EVENTS``
    events (from ``seed``), a second database for the target, and the migration's stores."""
    async with (
        isolated(run_id, name, **overrides) as s,
        second_database(s) as target_url,
        migration_stores(s) as ms,
        projecting(s, "articles"),
    ):
        log = EventLog.from_settings(s)
        await log.start()
        try:
            book = ArticleBook()
            history = article_history(book, random.Random(seed), events=EVENTS, tags=TAGS)
            await append_events(log, history)
            await until_applied(s, "articles", len(history))
            yield Migrating(s, target_url, ms, log, book, history)
        finally:
            await log.close()


async def test_a_target_is_filled_before_it_is_written_live(run_id: str) -> None:
    async with migrating(run_id, "migfill", 3, replay_caught_up_events=0) as m:
        ms, history = m.ms, m.history
        await start(ms, "articles", m.target_url)
        with pytest.raises(MigrationRefused, match="migrate fill articles"):
            await move(ms, "articles", Phase.SOURCE_FIRST)

        shown: list[ReplayProgress] = []
        done = await fill(
            ms, "articles", FillPlan(advance=False), show=shown.append, stop=asyncio.Event()
        )
        assert (done.state, done.done, done.total) == ("caught up", len(history), len(history))
        assert shown[-1] == done

        migration = await move(ms, "articles", Phase.SOURCE_FIRST)
        pair = Pair(migration, ms.stores.engine, ms.engine(Store.TARGET, migration))
        assert await full_pass(pair) == []
        # Live from here: the next events reach both stores.
        more = article_history(m.book, random.Random(4), events=50, tags=TAGS)
        await append_events(m.log, more)
        await until_applied(m.settings, "articles", len(history) + len(more))

        async def equal() -> bool:
            return await full_pass(pair) == []

        await wait_until(equal, timeout_s=60)


async def test_a_fill_ends_on_what_it_applied(run_id: str) -> None:
    """Caught up within the bound, the fill stops its runner, which finishes the batch in
    hand: its last figure is measured after that (it was the one before, and said the
    target further behind than it was)."""
    async with migrating(run_id, "migfig", 6, replay_caught_up_events=10**6) as m:
        migration = await start(m.ms, "articles", m.target_url)
        shown: list[ReplayProgress] = []
        done = await fill(
            m.ms, "articles", FillPlan(advance=False), show=shown.append, stop=asyncio.Event()
        )
        assert done.state == "caught up"
        assert shown[-1] == done
        ends = LogEnds(m.settings.kafka_bootstrap, m.settings.prefix)
        await ends.start()
        try:
            applied, _ = await progress_of(m.ms, ends, migration, Store.TARGET)
        finally:
            await ends.close()
        assert done.done == applied


async def test_a_source_dropped_after_phase_4_is_never_used_again(run_id: str) -> None:
    """The runbook drops the source schema once phase 4 is final. Its checkpoints stay in
    the main database's table, so a move back to 3 passed the catch-up check, and the live
    projector (writing the source first) stopped on the missing tables, the target serving
    reads with it; ``fill`` said "caught up" having applied nothing."""
    async with migrating(run_id, "migdrop", 5) as m:
        ms = m.ms
        await start(ms, "articles", m.target_url)
        await fill(ms, "articles", FillPlan(), show=lambda _: None, stop=asyncio.Event())
        for wanted in (Phase.TARGET_FIRST, Phase.TARGET_ONLY):
            migration = await move(ms, "articles", wanted)
        schema = ms.projector(Store.SOURCE, migration).schema
        async with ms.stores.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

        with pytest.raises(MigrationRefused, match=f"no schema {schema} any more"):
            await move(ms, "articles", Phase.TARGET_FIRST)
        with pytest.raises(MigrationRefused, match="nothing to fill"):
            await fill(ms, "articles", FillPlan(), show=lambda _: None, stop=asyncio.Event())
        assert (await migration_of(ms.stores, "articles")).phase is Phase.TARGET_ONLY
