"""Replaying the articles topic into an empty generation gives exactly the live read model,
for random sequences of create / edit / publish / withdraw / delete."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis import make_redis
from bloghub.commands.slugs import slug_base
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleDrafted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
    DraftEdited,
)
from bloghub.events.base import envelop, registry
from bloghub.events.log import EventLog
from bloghub.ids import new_id_str
from bloghub.projections.articles import ArticlesProjector
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import applied, replay_generation, wait_until

OPS = st.sampled_from(["create", "edit", "publish", "withdraw", "delete"])
TITLES = st.text(alphabet="abc 中文", min_size=1, max_size=8).filter(lambda t: t.strip() != "")
TAGS = st.lists(st.sampled_from(["go", "py", "rs", "js", "db", "中"]), max_size=4, unique=True)
STEPS = st.lists(st.tuples(OPS, st.integers(0, 3), TITLES, TAGS), min_size=1, max_size=25)


def _named(title: str) -> dict[str, str]:
    """The slug and description the commands give a draft of ``title``."""
    return {"slug": slug_base(title), "description": title[:20]}


@dataclass
class Model:
    """The command rules in miniature: which events a sequence of requests makes."""

    author: str = field(default_factory=new_id_str)
    ids: list[str] = field(default_factory=lambda: [new_id_str() for _ in range(4)])
    state: dict[str, dict[str, Any]] = field(default_factory=dict)

    def step(self, op: str, which: int, title: str, tags: list[str]) -> ArticleEvent | None:
        article_id = self.ids[which]
        current = self.state.get(article_id)
        base = {"article_id": article_id, "author_id": self.author}
        if op == "create":
            if current is not None or article_id in self.state:
                return None
            self.state[article_id] = {"version": 1, "status": "draft", "title": title, "tags": tags}
            return ArticleDrafted(
                **base, version=1, title=title, content=title * 3, tags=tags, **_named(title)
            )
        if current is None or current["status"] == "deleted":
            return None
        version = current["version"] + 1
        current["version"] = version
        if op == "edit":
            current.update(title=title, tags=tags)
            return DraftEdited(
                **base, version=version, title=title, content=title * 3, tags=tags, **_named(title)
            )
        if op == "publish":
            current["status"] = "published"
            return ArticlePublished(
                **base,
                version=version,
                title=current["title"],
                content=current["title"] * 3,
                tags=current["tags"],
                **_named(current["title"]),
            )
        if op == "withdraw":
            if current["status"] != "published":
                current["version"] -= 1
                return None
            current["status"] = "withdrawn"
            return ArticleWithdrawn(**base, version=version)
        current["status"] = "deleted"
        return ArticleDeleted(**base, version=version)


@dataclass
class Rig:
    settings: Settings
    log: EventLog
    generations: itertools.count[int]
    appended: int = 0


@pytest.fixture(scope="module")
async def rig(run_id: str) -> AsyncIterator[Rig]:
    async with isolated(run_id, "replay") as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        engine = make_engine(s.sqlalchemy_url, pool_size=3)
        redis = make_redis(s.redis_url.get_secret_value())
        dead = DeadLetters(bootstrap=s.kafka_bootstrap, prefix=s.prefix, redis=redis)
        await dead.start()
        stop = asyncio.Event()
        live = ProjectorRunner(
            ArticlesProjector(engine, generation=1),
            config=RunnerConfig.from_settings(s),
            registry=registry,
            dead_letters=dead,
        )
        task = asyncio.create_task(live.run(stop))
        try:
            yield Rig(s, log, itertools.count(2))
        finally:
            stop.set()
            await task
            await dead.close()
            await redis.aclose()
            await engine.dispose()
            await log.close()


async def _tables(s: Settings, schema: str) -> tuple[list[Any], list[Any]]:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        rows = await conn.fetch(f'SELECT * FROM "{schema}".articles ORDER BY id')
        tags = await conn.fetch(f'SELECT * FROM "{schema}".article_tags ORDER BY article_id, tag')
        return [tuple(r) for r in rows], [tuple(r) for r in tags]
    finally:
        await conn.close()


async def _drop(s: Settings, schema: str) -> None:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_replay_equals_live(rig: Rig, steps: list[tuple[str, int, str, list[str]]]) -> None:
    model = Model()
    events = [e for e in (model.step(*step) for step in steps) if e is not None]
    if events:
        await rig.log.append([envelop(e, actor_id=model.author, request_id=None) for e in events])
        rig.appended += len(events)

    async def live_caught_up() -> bool:
        return await applied(rig.settings, "articles", 1) >= rig.appended

    await wait_until(live_caught_up, timeout_s=60)
    live_rows, live_tags = await _tables(rig.settings, "articles_g1")
    # The live model agrees with the rules: one row per article not deleted, at its version.
    mine = {r[0]: r for r in live_rows if str(r[0]) in model.ids}
    expected = {i: st for i, st in model.state.items() if st["status"] != "deleted"}
    assert {str(k) for k in mine} == set(expected)
    for article_id, row in mine.items():
        assert (row[2], row[3]) == (
            expected[str(article_id)]["version"],
            expected[str(article_id)]["status"],
        )

    generation = next(rig.generations)
    await replay_generation(rig.settings, ArticlesProjector, generation, until=rig.appended)
    assert await _tables(rig.settings, f"articles_g{generation}") == (live_rows, live_tags)
    await _drop(rig.settings, f"articles_g{generation}")
