"""The social projector: who follows whom, the counts of both sides, and the feed's copy of
when each published article was published (from the articles family). An erased account
(from the users family) follows no one and is followed by no one from its erasure on.

The feed is pulled on read (README, "The feed"): publishing writes one row here however
many followers the author has, and a reader's page is an index walk per followee.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import erased_users, feed_articles, follow_counts, follows
from bloghub.events.articles import ArticleDeleted, ArticleEvent, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Event, Recorded
from bloghub.events.social import FollowEvent, UserFollowed, UserUnfollowed
from bloghub.events.topics import Family
from bloghub.events.users import UserErased
from bloghub.projections.postgres_sink import PostgresProjector, concerning
from bloghub.readmodels import follow_counts_key


class FollowTally:
    """The net change a batch makes to each user's follower and followee counts."""

    def __init__(self) -> None:
        self.followers: Counter[str] = Counter()
        self.followees: Counter[str] = Counter()

    def moved(self, follower_id: str, followee_id: str, by: int) -> None:
        self.followers[followee_id] += by
        self.followees[follower_id] += by

    def users(self) -> set[str]:
        """Every user whose counts the batch moved."""
        return {u for u in {*self.followers, *self.followees} if self._moves(u)}

    def changes(self) -> list[dict[str, Any]]:
        """Non-zero changes in user order: every batch locks count rows in that order, so
        two batches that share users wait for each other instead of deadlocking."""
        users = sorted(u for u in {*self.followers, *self.followees} if self._moves(u))
        return [
            {"user_id": u, "followers": self.followers[u], "followees": self.followees[u]}
            for u in users
        ]

    def _moves(self, user_id: str) -> bool:
        return bool(self.followers[user_id] or self.followees[user_id])


async def write_follow_tally(conn: AsyncConnection, tally: FollowTally) -> None:
    changes = tally.changes()
    if not changes:
        return
    stmt = insert(follow_counts)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[follow_counts.c.user_id],
            set_={
                "followers": follow_counts.c.followers + stmt.excluded.followers,
                "followees": follow_counts.c.followees + stmt.excluded.followees,
            },
        ),
        changes,
    )
    # A user nobody follows and who follows nobody has no row, however the batches fell:
    # a replay then builds exactly what the live run kept. (Rows this transaction holds
    # already: the delete takes no new lock.)
    c = follow_counts.c
    fallen = [str(ch["user_id"]) for ch in changes if ch["followers"] < 0 or ch["followees"] < 0]
    if fallen:
        await conn.execute(
            delete(follow_counts).where(c.user_id.in_(fallen), c.followers == 0, c.followees == 0)
        )


# The article events the feed index follows; drafts and their edits are not among them.
_FEED_EVENTS = (ArticlePublished, ArticleWithdrawn, ArticleDeleted)
_CONCERNS = concerning(FollowEvent, UserErased, *_FEED_EVENTS)
# The users whose counts a batch moved (an erasure moves those of everyone it unfollows),
# from ``handle`` to the cache fence of the same batch (lanes run concurrently, each in a
# task of its own).
_COUNTED: ContextVar[tuple[Sequence[Recorded], set[str]] | None] = ContextVar(
    "social_counted", default=None
)


class SocialProjector(PostgresProjector):
    name = "social"
    families: tuple[Family, ...] = (Family.SOCIAL, Family.ARTICLES, Family.USERS)

    def concerns(self, record: Recorded) -> bool:
        return _CONCERNS(record)

    def passes_over(self, model: type[Event]) -> bool:
        return not _CONCERNS.model(model)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        tally = FollowTally()
        await _hold_users(conn, records)
        for rec in records:
            ev = rec.event
            if isinstance(ev, FollowEvent):
                await self._follow(conn, ev, rec.envelope.occurred_at, tally)
            elif isinstance(ev, _FEED_EVENTS):
                await self._article(conn, ev, rec.envelope.occurred_at)
            elif isinstance(ev, UserErased):
                await self._erased(conn, ev.user_id, tally)
        # Last, so the shared count rows are held only for the end of the transaction.
        await write_follow_tally(conn, tally)
        _COUNTED.set((records, tally.users()))

    async def _follow(
        self, conn: AsyncConnection, ev: FollowEvent, at: datetime, tally: FollowTally
    ) -> None:
        # Counts move by the rows actually added or removed: a repeated follow or an
        # unfollow of someone not followed changes nothing.
        f = follows.c
        if isinstance(ev, UserFollowed):
            params = {"a": ev.follower_id, "b": ev.followee_id, "at": at}
            done = await conn.execute(_FOLLOW, params)
            if done.rowcount:
                tally.moved(ev.follower_id, ev.followee_id, 1)
        elif isinstance(ev, UserUnfollowed):
            done = await conn.execute(
                delete(follows).where(
                    f.follower_id == ev.follower_id, f.followee_id == ev.followee_id
                )
            )
            if done.rowcount:
                tally.moved(ev.follower_id, ev.followee_id, -1)

    async def _erased(self, conn: AsyncConnection, user_id: str, tally: FollowTally) -> None:
        await conn.execute(_ERASED, {"u": user_id})
        for follower_id, followee_id in await conn.execute(_UNFOLLOW_ALL, {"u": user_id}):
            tally.moved(str(follower_id), str(followee_id), -1)

    async def _article(self, conn: AsyncConnection, ev: ArticleEvent, at: datetime) -> None:
        # As in the articles read model: a row at or past the event's version has seen it.
        match ev:
            case ArticlePublished():
                params = {"a": ev.article_id, "au": ev.author_id, "v": ev.version, "at": at}
                await conn.execute(_FEED_PUBLISHED, params)
            case ArticleWithdrawn():
                await conn.execute(_FEED_WITHDRAWN, {"a": ev.article_id, "v": ev.version})
            case ArticleDeleted():
                await conn.execute(_FEED_DELETED, {"a": ev.article_id})

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        cache = self.cache
        if cache is None:
            return set()
        users: set[str] = set()
        for rec in records:
            if isinstance(rec.event, FollowEvent):
                users |= {rec.event.follower_id, rec.event.followee_id}
        counted = _COUNTED.get()
        if counted is not None and counted[0] is records:
            users |= counted[1]
        return {follow_counts_key(cache, u) for u in users}


# The feed index's statements, built once: built per event, SQLAlchemy's construction and
# cache key cost more than the database's work, and every article event of a replay
# passes here.
_row = feed_articles.c
_A = bindparam("a", type_=_row.article_id.type)
_V = bindparam("v", type_=_row.version.type)
_published = insert(feed_articles).values(
    article_id=_A,
    author_id=bindparam("au", type_=_row.author_id.type),
    version=_V,
    published_at=bindparam("at", type_=_row.published_at.type),
    visible=True,
)
_FEED_PUBLISHED = _published.on_conflict_do_update(
    index_elements=["article_id"],
    # The first publish's time stays the article's place in the feed.
    set_={"version": _published.excluded.version, "visible": True},
    where=_row.version < _published.excluded.version,
)
_FEED_WITHDRAWN = (
    update(feed_articles)
    .where(_row.article_id == _A, _row.version < _V)
    .values(version=_V, visible=False)
)
_FEED_DELETED = delete(feed_articles).where(_row.article_id == _A)


# A follow is recorded unless either side was erased (see ``erased_users``).
_f, _e = follows.c, erased_users.c
_FOLLOWER = bindparam("a", type_=_f.follower_id.type)
_FOLLOWEE = bindparam("b", type_=_f.followee_id.type)
_FOLLOW = (
    insert(follows)
    .from_select(
        ["follower_id", "followee_id", "followed_at"],
        select(_FOLLOWER, _FOLLOWEE, bindparam("at", type_=_f.followed_at.type)).where(
            ~exists().where(or_(_e.user_id == _FOLLOWER, _e.user_id == _FOLLOWEE))
        ),
    )
    .on_conflict_do_nothing(index_elements=["follower_id", "followee_id"])
)
_U = bindparam("u", type_=_e.user_id.type)
_ERASED = insert(erased_users).values(user_id=_U).on_conflict_do_nothing()
_UNFOLLOW_ALL = (
    delete(follows)
    .where(or_(_f.follower_id == _U, _f.followee_id == _U))
    .returning(_f.follower_id, _f.followee_id)
)


# Follows and erasures of the same user come from different families, so two lanes may
# apply them at once, and neither would see the other's uncommitted rows: a follow checks
# for a tombstone not yet committed, the erasure deletes follows that one has not yet
# committed, and the follow survives. Each batch therefore holds its users first: a share
# lock per user it follows or unfollows, an exclusive one per user it erases (transaction
# advisory locks, freed at commit), all in key order in one statement, so two batches
# never wait on each other in a cycle. Whichever commits second then sees the other's rows.
_USER_LOCKS = 0x50C1  # the lock class: users held by the social projector
_HOLD = text(
    "SELECT CASE WHEN t.x THEN pg_advisory_xact_lock(:c, t.k)::text "
    "ELSE pg_advisory_xact_lock_shared(:c, t.k)::text END "
    "FROM unnest(CAST(:k AS int[]), CAST(:x AS boolean[])) AS t(k, x)"
)


def _lock_key(user_id: str) -> int:
    key = zlib.crc32(user_id.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


async def _hold_users(conn: AsyncConnection, records: Sequence[Recorded]) -> None:
    exclusive: dict[int, bool] = {}
    for rec in records:
        ev = rec.event
        if isinstance(ev, UserErased):
            exclusive[_lock_key(ev.user_id)] = True
        elif isinstance(ev, FollowEvent):
            for user_id in (ev.follower_id, ev.followee_id):
                exclusive.setdefault(_lock_key(user_id), False)
    if exclusive:
        keys = sorted(exclusive)
        params = {"c": _USER_LOCKS, "k": keys, "x": [exclusive[k] for k in keys]}
        await conn.execute(_HOLD, params)
