"""The notifications projector on the real log and store: each cause notifies its user
once (also across an unfollow and re-follow, an unlike and re-like, a repeated like),
never its own actor; a replay gives the same notifications and pushes none; read marks
hold whatever order they are applied in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from redis.asyncio import Redis

from bloghub.adapters.postgres.generations import create_generation
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.events.base import Event
from bloghub.events.comments import CommentPosted
from bloghub.events.interactions import ArticleLiked, ArticleUnliked
from bloghub.events.log import EventLog
from bloghub.events.notifications import NotificationsRead
from bloghub.events.social import UserFollowed, UserUnfollowed
from bloghub.ids import new_id_str
from bloghub.projections.notifications import Notice, NotificationsProjector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting
from tests.support import append_events, applied, recorded, replay_generation, wait_until

Row = tuple[str, str, str, str | None, int | None]  # user, kind, actor, comment, milestone


@pytest.fixture(scope="module")
async def notify_settings(run_id: str) -> AsyncIterator[Settings]:
    async with isolated(run_id, "notify") as s:
        yield s


async def _rows(settings: Settings, generation: int = 1) -> list[Row]:
    async with pg(settings) as conn:
        found = await conn.fetch(
            "SELECT user_id::text, kind, actor_id::text, comment_id::text, milestone "
            f"FROM notifications_g{generation}.notifications ORDER BY created_at, id"
        )
    return [tuple(r) for r in found]


async def _append(settings: Settings, events: list[Event]) -> None:
    log = EventLog.from_settings(settings)
    await log.start()
    try:
        for event in events:  # one by one: each cause in its own batch or not, in order
            await append_events(log, [event])
    finally:
        await log.close()


async def listening(
    redis: Redis, channel: str, into: list[dict[str, object]]
) -> asyncio.Task[None]:
    """A task that keeps each push on ``channel`` in ``into``, returned once subscribed
    (pub/sub drops what is published before the subscription)."""
    subscribed = asyncio.Event()
    task = asyncio.create_task(_pushes(redis, channel, into, subscribed))
    await asyncio.wait_for(subscribed.wait(), timeout=30)
    return task


async def _pushes(
    redis: Redis, channel: str, into: list[dict[str, object]], subscribed: asyncio.Event
) -> None:
    async with redis.pubsub() as sub:
        await sub.subscribe(channel)
        subscribed.set()
        while True:
            message = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                into.append(orjson.loads(message["data"]))


def _story(a: str, b: str, c: str, article: str, likers: list[str]) -> list[Event]:
    c1, c2, c3, c4 = (new_id_str() for _ in range(4))
    on = {"article_id": article, "article_author_id": a}
    liked = [ArticleLiked(article_id=article, author_id=a, user_id=u) for u in likers]
    return [
        UserFollowed(follower_id=b, followee_id=a),
        UserUnfollowed(follower_id=b, followee_id=a),
        UserFollowed(follower_id=b, followee_id=a),
        UserFollowed(follower_id=a, followee_id=a),
        CommentPosted(comment_id=c1, author_id=b, content="first", **on),
        CommentPosted(comment_id=c4, author_id=a, content="mine", **on),
        CommentPosted(
            comment_id=c2, author_id=c, parent_id=c1, parent_author_id=b, content="re", **on
        ),
        CommentPosted(
            comment_id=c3, author_id=a, parent_id=c1, parent_author_id=b, content="re2", **on
        ),
        *liked[:9],
        ArticleUnliked(article_id=article, author_id=a, user_id=likers[0]),
        liked[0],
        liked[1],  # a repeated like counts once
        liked[9],
    ]


async def test_each_cause_notifies_its_user_once(notify_settings: Settings) -> None:
    s = notify_settings
    a, b, c, article = (new_id_str() for _ in range(4))
    likers = [new_id_str() for _ in range(10)]
    pushed: list[dict[str, object]] = []
    redis = make_redis(s.redis_url.get_secret_value())
    heard = await listening(redis, notifications_channel(s.prefix), pushed)
    try:
        async with projecting(s, "notifications"):
            events = _story(a, b, c, article, likers)
            await _append(s, events)

            async def all_applied() -> bool:
                return await applied(s, "notifications") >= len(events)

            await wait_until(all_applied)

            async def all_pushed() -> bool:
                return len(pushed) >= 7

            await wait_until(all_pushed, timeout_s=60)
    finally:
        heard.cancel()
        await redis.aclose()
    rows = await _rows(s)
    kinds_of_a = sorted((kind, actor, m) for user, kind, actor, _, m in rows if user == a)
    assert kinds_of_a == sorted(
        [
            ("follower", b, None),
            ("comment", b, None),
            ("comment", c, None),
            ("like_milestone", likers[0], 1),
            ("like_milestone", likers[9], 10),
        ]
    )
    assert sorted((kind, actor) for user, kind, actor, _, _ in rows if user == b) == sorted(
        [("reply", c), ("reply", a)]
    )
    assert len(rows) == 7
    # Each new notification was pushed once, after its commit.
    assert sorted(str(p["id"]) for p in pushed) == sorted(await _ids(s))


async def _ids(settings: Settings, generation: int = 1) -> list[str]:
    async with pg(settings) as conn:
        found = await conn.fetch(f"SELECT id::text FROM notifications_g{generation}.notifications")
    return [r[0] for r in found]


async def test_a_replay_rebuilds_the_same_notifications_and_pushes_none(
    notify_settings: Settings,
) -> None:
    s = notify_settings
    a, b, c, article = (new_id_str() for _ in range(4))
    async with projecting(s, "notifications"):
        events = _story(a, b, c, article, [new_id_str() for _ in range(10)])
        await _append(s, events)
        total = await _log_size(s)

        async def all_applied() -> bool:
            return await applied(s, "notifications") >= total

        await wait_until(all_applied)
    pushed: list[dict[str, object]] = []
    redis = make_redis(s.redis_url.get_secret_value())
    heard = await listening(redis, notifications_channel(s.prefix), pushed)
    try:
        await replay_generation(s, NotificationsProjector, 2, until=total)
        await asyncio.sleep(1.0)  # a push after the commit would have arrived by now
    finally:
        heard.cancel()
        await redis.aclose()
    assert sorted(await _ids(s, 2)) == sorted(await _ids(s, 1))
    assert await _rows(s, 2) != []
    assert pushed == []


async def _log_size(settings: Settings) -> int:
    """Every record of the topics the projector reads (other tests of the module add some)."""
    from tests.conftest import read_topic

    families = NotificationsProjector.families
    topics = [f"{settings.prefix}.{f.value}" for f in families]
    return sum([len(await read_topic(settings, t)) for t in topics])


async def test_read_marks_hold_in_any_order(notify_settings: Settings) -> None:
    s = notify_settings
    reader, early, late, older = (new_id_str() for _ in range(4))
    follow_early = UserFollowed(follower_id=early, followee_id=reader)
    marked = Notice(f"follower:{early}:{reader}", reader, "follower", early).id
    far_future = datetime.now(UTC) + timedelta(days=1)
    async with projecting(s, "notifications"):
        # The marks reach the projector before the notifications they cover.
        await _append(
            s,
            [
                NotificationsRead(user_id=reader, ids=[marked]),
                follow_early,
                UserFollowed(follower_id=older, followee_id=reader),
            ],
        )
        await _append(
            s,
            [
                NotificationsRead(user_id=reader, up_to_at=far_future, up_to_id=new_id_str()),
                UserFollowed(follower_id=late, followee_id=reader),
            ],
        )

        async def three() -> bool:
            async with pg(s) as conn:
                n = await conn.fetchval(
                    "SELECT count(*) FROM notifications_g1.notifications WHERE user_id = $1",
                    reader,
                )
            return int(n) == 3

        await wait_until(three)
    async with pg(s) as conn:
        unread = await conn.fetchval(
            "SELECT count(*) FROM notifications_g1.notifications WHERE user_id = $1 AND NOT read",
            reader,
        )
    assert unread == 0


async def test_a_read_mark_and_the_notification_it_covers_applied_at_once_hold(
    notify_settings: Settings,
) -> None:
    """Two lanes apply a read mark and a new follower's notification in transactions
    that overlap: whichever commits last must see the other. Replayed step by step: the
    mark's transaction is left open while the notification's is applied."""
    s, generation = notify_settings, 7
    reader, follower = new_id_str(), new_id_str()
    engine = projector_engine(s.sqlalchemy_url, pool_size=2)
    try:
        async with engine.begin() as conn:
            await create_generation(conn, "notifications", generation, activate=False)
        projector = NotificationsProjector(engine, prefix=s.prefix, generation=generation)
        far_future = datetime.now(UTC) + timedelta(days=1)
        mark = NotificationsRead(user_id=reader, up_to_at=far_future, up_to_id=new_id_str())
        follow = UserFollowed(follower_id=follower, followee_id=reader)

        async def apply_alone(event: Event, topic: str) -> None:
            async with engine.begin() as raw:
                conn = await raw.execution_options(schema_translate_map={None: projector.schema})
                await projector.handle(conn, [recorded(event, topic=topic, partition=0, offset=0)])

        async with engine.connect() as raw_mark:
            conn = await raw_mark.execution_options(schema_translate_map={None: projector.schema})
            await conn.begin()
            await projector.handle(conn, [recorded(mark, topic="users", partition=0, offset=0)])
            notify = asyncio.create_task(apply_alone(follow, "social"))

            async def notify_done_or_waiting() -> bool:
                async with pg(s) as check:
                    waiting = await check.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                return notify.done() or int(waiting) > 0

            await wait_until(notify_done_or_waiting)
            await conn.commit()
        await notify
        async with pg(s) as check:
            unread = await check.fetchval(
                f"SELECT count(*) FROM notifications_g{generation}.notifications"
                " WHERE user_id = $1 AND NOT read",
                reader,
            )
        assert unread == 0
    finally:
        await engine.dispose()
