"""Through the real log: the social and comments projectors, run live while the events
are appended, and a replay of the same topics into a new generation build identical
tables (event times included: both read the same envelopes). An account erased midway
(the users topic) is in no follow of either."""

from __future__ import annotations

import random

import asyncpg

from bloghub.events.base import Event
from bloghub.events.log import EventLog
from bloghub.projections.comments import CommentsProjector
from bloghub.projections.social import SocialProjector
from bloghub.settings import Settings
from tests.conftest import isolated, projecting
from tests.integration.test_social_model import (
    COMMENT_TABLES,
    SOCIAL_TABLES,
    USERS,
    article_log,
    comment_log,
    erasure_log,
    follow_log,
)
from tests.support import append_events, replay_generation, until_applied


async def _dump(
    s: Settings, schema: str, tables: dict[str, str]
) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(s.asyncpg_dsn)
    try:
        return {
            t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {schema}.{t} ORDER BY {o}")]
            for t, o in tables.items()
        }
    finally:
        await conn.close()


async def test_replaying_the_social_and_comments_topics_builds_the_live_tables(
    run_id: str,
) -> None:
    rng = random.Random(13)
    follows, _ = follow_log(
        [
            (rng.random() < 0.7, a, b)
            for a, b in ((rng.randrange(5), rng.randrange(5)) for _ in range(300))
            if a != b
        ]
    )
    articles, published = article_log(
        [
            (rng.choice(["create", "publish", "publish", "withdraw", "delete"]), rng.randrange(4))
            for _ in range(80)
        ]
    )
    comments, tree = comment_log(
        [
            (rng.choice(["post", "reply", "reply", "delete"]), rng.randrange(2), rng.randrange(40))
            for _ in range(200)
        ]
    )
    erasures, _ = erasure_log([4])
    half = len(follows) // 2
    events: list[Event] = [
        e for _, _, e in [*follows[:half], *erasures, *follows[half:], *articles, *comments]
    ]
    async with isolated(run_id, "socialreplay") as s:
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            async with projecting(s, "social", "comments"):
                await append_events(log, events, chunk=50)
                await until_applied(s, "social", len(follows) + len(articles) + 1)
                await until_applied(s, "comments", len(comments))
        finally:
            await log.close()
        live_social = await _dump(s, "social_g1", SOCIAL_TABLES)
        live_comments = await _dump(s, "comments_g1", COMMENT_TABLES)
        assert {str(r[0]) for r in live_social["feed_articles"] if r[4]} == published
        assert {str(r[0]) for r in live_comments["comments"]} == set(tree.live)
        assert not [r for r in live_social["follows"] if USERS[4] in (str(r[0]), str(r[1]))]
        assert [str(r[0]) for r in live_social["erased_users"]] == [USERS[4]]

        await replay_generation(s, SocialProjector, 2, until=len(follows) + len(articles) + 1)
        await replay_generation(s, CommentsProjector, 2, until=len(comments))
        assert await _dump(s, "social_g2", SOCIAL_TABLES) == live_social
        assert await _dump(s, "comments_g2", COMMENT_TABLES) == live_comments
