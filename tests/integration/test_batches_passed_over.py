"""A batch with nothing in it for a projector moves that projector's checkpoints in one
statement, without a transaction, and writes nothing else; a batch with anything in it
is applied as before. What a projector declares it passes by (``concerns``) is checked
against what its ``handle`` does with every event of its topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.generations import create_generation, schema_name
from bloghub.errors import Transient
from bloghub.events.articles import ArticleDrafted, ArticlePublished, DraftEdited
from bloghub.events.base import Event, Recorded, registry
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import SessionStarted
from bloghub.ids import new_id_str
from bloghub.projections.interactions import InteractionsProjector
from bloghub.projections.notifications import NotificationsProjector
from bloghub.projections.postgres_sink import PostgresProjector, projector_engine
from bloghub.projections.social import SocialProjector
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import against_the_store, recorded

GENERATION = 1
HYPOTHESIS = against_the_store(60)


@dataclass
class Rig:
    settings: Settings
    engine: AsyncEngine
    projectors: dict[str, PostgresProjector]


@pytest.fixture(scope="module")
async def rig(run_id: str) -> AsyncIterator[Rig]:
    async with isolated(run_id, "passover") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=2)
        made: list[PostgresProjector] = [
            SocialProjector(engine, generation=GENERATION),
            InteractionsProjector(engine, generation=GENERATION),
            NotificationsProjector(engine, prefix=s.prefix, generation=GENERATION),
        ]
        try:
            async with engine.begin() as conn:
                for p in made:
                    await create_generation(conn, p.name, GENERATION, activate=False)
            yield Rig(s, engine, {p.name: p for p in made})
        finally:
            await engine.dispose()


@dataclass
class Sent:
    statements: list[str]  # as SQLAlchemy sends them
    driver: list[str]  # asyncpg's log of every query it runs (BEGIN and COMMIT included)


def counted(url: str) -> tuple[AsyncEngine, Sent]:
    """An engine of one connection, and what it sends PostgreSQL."""
    engine = projector_engine(url, pool_size=1)
    sent = Sent([], [])

    def statement(*args: Any) -> None:
        sent.statements.append(str(args[2]))

    def connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda q: sent.driver.append(q.query))

    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    event.listen(engine.sync_engine, "connect", connected)
    return engine, sent


async def rows_in(s: Settings, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return {
            t["table_name"]: await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{t[0]}"')
            for t in tables
        }
    finally:
        await conn.close()


async def checkpoint(s: Settings, projector: str, topic: str) -> int | None:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        found: int | None = await conn.fetchval(
            "SELECT next_offset FROM projector_checkpoints "
            "WHERE projector = $1 AND generation = $2 AND topic = $3 AND partition = 0",
            projector,
            GENERATION,
            topic,
        )
        return found
    finally:
        await conn.close()


def drafts(topic: str, start: int) -> list[Recorded]:
    article, author = new_id_str(), new_id_str()
    made = ArticleDrafted(
        article_id=article, author_id=author, version=1, title="Draft", content="x", tags=[]
    )
    edited = DraftEdited(
        article_id=article, author_id=author, version=2, title="Draft 2", content="y", tags=[]
    )
    return [
        recorded(made, topic=topic, partition=0, offset=start),
        recorded(edited, topic=topic, partition=0, offset=start + 1),
    ]


@pytest.mark.parametrize("name", ["social", "interactions"])
async def test_drafts_only_move_the_checkpoint_in_one_statement(rig: Rig, name: str) -> None:
    engine, sent = counted(rig.settings.sqlalchemy_url)
    projector = type(rig.projectors[name])(engine, generation=GENERATION)
    topic = topic_for(rig.settings.prefix, Family.ARTICLES)
    before = await rows_in(rig.settings, projector.schema)
    try:
        # The driver's own queries on a first connection, and its first look at the
        # statement's array types, go before what is counted.
        await projector.apply(drafts(topic, 0), {(topic, 0): 2})
        sent.statements.clear()
        sent.driver.clear()
        applied = await projector.apply(drafts(topic, 2), {(topic, 0): 4})
    finally:
        await engine.dispose()
    assert applied == ()
    # One statement, on the driver's connection (no SQLAlchemy execution, no transaction).
    assert sent.statements == []
    assert len(sent.driver) == 1, sent.driver
    assert sent.driver[0].startswith("INSERT INTO")
    assert "projector_checkpoints" in sent.driver[0]
    assert await checkpoint(rig.settings, name, topic) == 4
    assert await rows_in(rig.settings, projector.schema) == before


async def test_a_checkpoint_passed_over_never_moves_back(rig: Rig) -> None:
    projector = rig.projectors["social"]
    topic = topic_for(f"{rig.settings.prefix}-back", Family.ARTICLES)
    await projector.apply(drafts(topic, 10), {(topic, 0): 12})
    await projector.apply(drafts(topic, 4), {(topic, 0): 6})  # a late instance's batch
    assert await checkpoint(rig.settings, "social", topic) == 12


async def test_a_pass_over_on_a_connection_the_server_ended_is_tried_again_on_a_fresh_one(
    rig: Rig,
) -> None:
    """The statement goes on the driver's connection, past SQLAlchemy: a connection it
    finds broken must not be lent again, or every later pass over would fail on it."""
    engine = projector_engine(rig.settings.sqlalchemy_url, pool_size=1)
    projector = SocialProjector(engine, generation=GENERATION)
    topic = topic_for(f"{rig.settings.prefix}-ended", Family.ARTICLES)
    try:
        await projector.apply(drafts(topic, 0), {(topic, 0): 2})
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            pid = driver.get_server_pid()
        admin = await asyncpg.connect(rig.settings.asyncpg_dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        with pytest.raises(Transient):
            await projector.apply(drafts(topic, 2), {(topic, 0): 4})
        assert await projector.apply(drafts(topic, 2), {(topic, 0): 4}) == ()
    finally:
        await engine.dispose()
    assert await checkpoint(rig.settings, "social", topic) == 4


async def test_a_pass_over_whose_session_ends_mid_statement_is_tried_again_on_a_fresh_one(
    rig: Rig,
) -> None:
    """The server ends the session while the statement waits for a row lock (as a failover
    or an administrator would): the error is the server's own (08003), and the connection
    it came on must not be lent again either."""
    engine = projector_engine(rig.settings.sqlalchemy_url, pool_size=1)
    projector = SocialProjector(engine, generation=GENERATION)
    topic = topic_for(f"{rig.settings.prefix}-midway", Family.ARTICLES)
    holder = await asyncpg.connect(rig.settings.asyncpg_dsn)
    try:
        await projector.apply(drafts(topic, 0), {(topic, 0): 2})
        held = holder.transaction()
        await held.start()
        await holder.execute(
            "SELECT 1 FROM projector_checkpoints WHERE projector = 'social' AND topic = $1"
            " FOR UPDATE",
            topic,
        )
        waiting = asyncio.create_task(projector.apply(drafts(topic, 2), {(topic, 0): 4}))
        pid = None
        for _ in range(100):
            pid = await holder.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
                " AND query LIKE 'INSERT INTO public.projector_checkpoints%'"
            )
            if pid is not None:
                break
            await asyncio.sleep(0.05)
        assert pid is not None, "the pass over never waited for the lock"
        assert await holder.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(Transient):
            await waiting
        await held.rollback()
        assert await projector.apply(drafts(topic, 2), {(topic, 0): 4}) == ()
    finally:
        await holder.close()
        await engine.dispose()
    assert await checkpoint(rig.settings, "social", topic) == 4


async def test_a_batch_with_one_event_for_the_projector_is_applied_whole(rig: Rig) -> None:
    projector = rig.projectors["social"]
    topic = topic_for(f"{rig.settings.prefix}-mixed", Family.ARTICLES)
    records = drafts(topic, 0)
    first = records[0].event
    assert isinstance(first, ArticleDrafted)
    shown = ArticlePublished(
        article_id=first.article_id,
        author_id=first.author_id,
        version=3,
        title="Draft 2",
        content="y",
        tags=[],
    )
    records.append(recorded(shown, topic=topic, partition=0, offset=2))
    applied = await projector.apply(records, {(topic, 0): 3})
    assert [r.offset for r in applied] == [0, 1, 2]
    conn = await asyncpg.connect(rig.settings.asyncpg_dsn)
    try:
        feed = await conn.fetch(
            f"SELECT article_id::text FROM {schema_name('social', GENERATION)}.feed_articles"
            " WHERE article_id = $1",
            first.article_id,
        )
    finally:
        await conn.close()
    assert [r[0] for r in feed] == [first.article_id]
    assert await checkpoint(rig.settings, "social", topic) == 3


def test_what_each_projector_passes_by() -> None:
    """The events the feed, the counts and the notifications have nothing to do with."""
    topic = "t"

    def passed(projector: PostgresProjector, event: Event) -> bool:
        return not projector.concerns(recorded(event, topic=topic, partition=0, offset=0))

    draft, edit = (r.event for r in drafts(topic, 0))
    session = SessionStarted(
        user_id=new_id_str(),
        session_id=new_id_str(),
        method="password",
        ua_hash="u",
        refresh_jti="j",
    )
    engine: Any = None
    social, interactions = SocialProjector(engine), InteractionsProjector(engine)
    notifications = NotificationsProjector(engine, prefix="p")
    assert passed(social, draft)
    assert passed(social, edit)
    assert passed(interactions, draft)
    assert passed(interactions, edit)
    assert passed(notifications, session)


def of_its_topics(projector: PostgresProjector) -> st.SearchStrategy[Event]:
    """Any event of any type of the projector's topics."""
    models = [m for m in registry.models() if m.FAMILY in projector.families]
    return st.sampled_from(models).flatmap(st.builds)


@HYPOTHESIS
@given(data=st.data())
async def test_what_a_projector_passes_by_its_handle_writes_nothing_of(
    rig: Rig, data: st.DataObject
) -> None:
    """An event ``concerns`` says no to, given to ``handle`` itself, leaves every table of
    the projector's schema as it was: the declaration and the dispatch agree."""
    projector = rig.projectors[data.draw(st.sampled_from(sorted(rig.projectors)))]
    ev = data.draw(of_its_topics(projector))
    rec = recorded(ev, topic=topic_for(rig.settings.prefix, ev.FAMILY), partition=0, offset=0)
    assume(not projector.concerns(rec))
    before = await rows_in(rig.settings, projector.schema)
    async with rig.engine.begin() as raw:
        conn = await raw.execution_options(schema_translate_map={None: projector.schema})
        await projector.handle(conn, [rec])
    assert await rows_in(rig.settings, projector.schema) == before
