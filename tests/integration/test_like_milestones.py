"""Like milestones are folded per batch, yet notify exactly what applying the likes one by
one would: any run of likes and unlikes, in any batch split (each batch delivered twice),
gives the same milestone notifications, the same likers and counts, as a model that applies
them in log order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bloghub.adapters.postgres.generations import create_generation
from bloghub.events.base import Recorded
from bloghub.events.interactions import ArticleLiked, ArticleUnliked
from bloghub.ids import new_id_str
from bloghub.projections.like_milestones import is_milestone
from bloghub.projections.notifications import NotificationsProjector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.settings import Settings
from tests.conftest import isolated
from tests.support import batches, recorded

GENERATION = 2
SCHEMA = f"notifications_g{GENERATION}"
USERS = 12  # enough likers to reach the milestone of 10
# (like?, article, user): user 0 is the author, whose own likes count but notify nobody:
# the milestone one of them reaches is told with the next like of someone else.
STEPS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 1), st.integers(0, USERS - 1)),
    min_size=1,
    max_size=80,
)
SPLITS = st.lists(st.integers(1, 15), min_size=1, max_size=6)
Step = tuple[bool, int, int]
Milestone = tuple[str, int, str]  # article, milestone, the liker who reached it


def model(
    steps: Sequence[Step], articles: list[str], users: list[str]
) -> tuple[set[Milestone], dict[str, int]]:
    """Event by event: the milestones notified, and the count of likers of each article
    ever liked (its row stays when the count falls back to none)."""
    likers: set[tuple[int, int]] = set()
    notified: dict[int, int] = {}
    told: set[Milestone] = set()
    for on, a, u in steps:
        if on == ((a, u) in likers):
            continue
        (likers.add if on else likers.discard)((a, u))
        count = sum(1 for x, _ in likers if x == a)
        notified.setdefault(a, 0)
        reached = max((m for m in range(1, count + 1) if is_milestone(m)), default=0)
        if on and reached > notified[a] and u != 0:
            notified[a] = reached
            told.add((articles[a], reached, users[u]))
    return told, {articles[a]: sum(1 for x, _ in likers if x == a) for a in notified}


@pytest.fixture(scope="module")
async def projector(run_id: str) -> AsyncIterator[tuple[Settings, NotificationsProjector]]:
    async with isolated(run_id, "milestones") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await create_generation(conn, "notifications", GENERATION, activate=False)
            yield s, NotificationsProjector(engine, prefix=s.prefix, generation=GENERATION)
        finally:
            await engine.dispose()


async def _state_then_empty(s: Settings) -> tuple[set[Milestone], dict[str, int], set[str]]:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        told = await conn.fetch(
            f"SELECT article_id::text AS a, milestone, actor_id::text AS u FROM "
            f"{SCHEMA}.notifications WHERE kind = 'like_milestone'"
        )
        counts = await conn.fetch(
            f"SELECT article_id::text AS a, likes FROM {SCHEMA}.like_milestones"
        )
        off = await conn.fetch(
            f"SELECT m.article_id::text AS a FROM {SCHEMA}.like_milestones m WHERE likes <> "
            f"(SELECT count(*) FROM {SCHEMA}.article_likers k WHERE k.article_id = m.article_id)"
        )
        await conn.execute(
            f"TRUNCATE {SCHEMA}.notifications, {SCHEMA}.article_likers, "
            f"{SCHEMA}.like_milestones; "
            f"DELETE FROM projector_checkpoints WHERE generation = {GENERATION}"
        )
    finally:
        await conn.close()
    return (
        {(r["a"], r["milestone"], r["u"]) for r in told},
        {r["a"]: r["likes"] for r in counts},
        {r["a"] for r in off},
    )


async def _run(
    rig: tuple[Settings, NotificationsProjector], records: list[Recorded], sizes: list[int]
) -> tuple[set[Milestone], dict[str, int]]:
    s, projector = rig
    for batch in batches(records, sizes):
        ends = {(r.topic, r.partition): r.offset + 1 for r in batch}
        await projector.apply(batch, ends)
        await projector.apply(batch, ends)  # delivered again: the checkpoint says so
    told, counts, off = await _state_then_empty(s)
    assert not off, "each count equals its likers"
    return told, counts


TEN_LIKERS: list[Step] = [(True, 0, u) for u in range(1, 11)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS, sizes=SPLITS)
# Ten likers in one batch: milestones 1 and 10 both reached within it.
@example(steps=TEN_LIKERS, sizes=[15])
# The tenth like undone and done again by another, in one batch: 10 is notified once.
@example(steps=[*TEN_LIKERS, (False, 0, 10), (True, 0, 11)], sizes=[15])
# The author's own like reaching a milestone notifies nobody; the next like of someone else
# tells the author of it (here 1, and 10 with the eleventh like, the author's the tenth).
@example(steps=[(True, 1, 0), (False, 1, 0), (True, 1, 3)], sizes=[1, 2])
@example(steps=[*TEN_LIKERS[:9], (True, 0, 0), (True, 0, 10)], sizes=[15])
async def test_milestones_in_any_batch_split_are_those_of_the_likes_one_by_one(
    projector: tuple[Settings, NotificationsProjector], steps: list[Step], sizes: list[int]
) -> None:
    author = new_id_str()
    articles = [new_id_str(), new_id_str()]
    users = [author, *(new_id_str() for _ in range(USERS - 1))]
    records = []
    for offset, (on, a, u) in enumerate(steps):
        kind = ArticleLiked if on else ArticleUnliked
        event = kind(article_id=articles[a], author_id=author, user_id=users[u])
        records.append(recorded(event, topic="interactions", partition=0, offset=offset))
    told, counts = model(steps, articles, users)
    assert await _run(projector, records, sizes) == (told, counts)
    assert await _run(projector, records, [len(records)]) == (told, counts)
