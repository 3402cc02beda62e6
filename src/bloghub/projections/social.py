"""The social projector: who follows whom, the counts of both sides, and the feed's copy of
when each published article was published (from the articles family).

The feed is pulled on read (README, "The feed"): publishing writes one row here however
many followers the author has, and a reader's page is an index walk per followee.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import feed_articles, follow_counts, follows
from bloghub.events.articles import ArticleDeleted, ArticleEvent, ArticlePublished, ArticleWithdrawn
from bloghub.events.base import Recorded
from bloghub.events.social import FollowEvent, UserFollowed, UserUnfollowed
from bloghub.events.topics import Family
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
_CONCERNS = concerning(FollowEvent, *_FEED_EVENTS)


class SocialProjector(PostgresProjector):
    name = "social"
    families: tuple[Family, ...] = (Family.SOCIAL, Family.ARTICLES)

    def concerns(self, record: Recorded) -> bool:
        return _CONCERNS(record)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        tally = FollowTally()
        for rec in records:
            ev = rec.event
            if isinstance(ev, FollowEvent):
                await self._follow(conn, ev, rec.envelope.occurred_at, tally)
            elif isinstance(ev, _FEED_EVENTS):
                await self._article(conn, ev, rec.envelope.occurred_at)
        # Last, so the shared count rows are held only for the end of the transaction.
        await write_follow_tally(conn, tally)

    async def _follow(
        self, conn: AsyncConnection, ev: FollowEvent, at: datetime, tally: FollowTally
    ) -> None:
        # Counts move by the rows actually added or removed: a repeated follow or an
        # unfollow of someone not followed changes nothing.
        f = follows.c
        if isinstance(ev, UserFollowed):
            done = await conn.execute(
                insert(follows)
                .values(follower_id=ev.follower_id, followee_id=ev.followee_id, followed_at=at)
                .on_conflict_do_nothing(index_elements=["follower_id", "followee_id"])
            )
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
