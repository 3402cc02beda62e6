"""The notifications projector: what each user is told of (a new follower, a comment on
their article, a reply to their comment, a like milestone of their article), their read
marks, and the push of each new notification to live sockets after the commit.

Nothing is notified twice: a notification's id is derived from what caused it (the
follower and followee, the comment, the article and milestone), and inserting an id that
exists does nothing, so a re-delivery, a replay into a new generation or an unfollow and
re-follow adds nothing. Pushes follow the commit, only for the batch's own new rows, and
never from a generation being rebuilt (``live`` is False then). Nor is one pushed twice:
for its grace after a replay switches a generation in, the old one still applies beside
the new one (requests pinned to it wait on it), and an instance that lost its partitions
may finish a batch its successor also applies; both make the same row, by the same id.
A push marks the id in Redis and publishes in one script, only if the mark was not there
(``PUSHED_TTL_S``, past any generation's grace), so the first of them pushes it.

A deleted comment takes with it the notifications about it and about every reply under
it: the projector keeps its own comment trees (``comment_threads``), applied in the log
order of the article's partition, so a replay removes exactly what live did. A deleted
article takes with it every notification about it (comments, replies, like milestones),
and is remembered (``deleted_articles``): a comment or like on it that comes later (their
topics keep no order with the articles topic) notifies no one. Both sides hold a lock on
the article, so neither misses the other's uncommitted rows.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import orjson
import structlog
from redis.asyncio import Redis
from sqlalchemy import (
    ColumnElement,
    DateTime,
    exists,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.tables import (
    deleted_articles,
    notification_marks,
    notifications,
    read_watermarks,
    removed_notifications,
)
from bloghub.adapters.redis.cache import Cache
from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.events.articles import ArticleDeleted
from bloghub.events.base import Event, Recorded
from bloghub.events.comments import CommentDeleted, CommentPosted
from bloghub.events.interactions import ArticleLiked, ArticleUnliked
from bloghub.events.notifications import NotificationsRead
from bloghub.events.social import UserFollowed
from bloghub.events.topics import Family
from bloghub.projections import comment_threads as threads
from bloghub.projections import like_milestones as milestones
from bloghub.projections.postgres_sink import PostgresProjector, concerning
from bloghub.projections.removed_notifications import removing
from bloghub.projections.stores import Stores
from bloghub.readmodels import notification_view
from bloghub.settings import Settings

log = structlog.get_logger(__name__)

# Fixed for good: changing it would give every notification a new id on the next replay.
_IDS = uuid.UUID("6f1c5a0e-1b7d-4c55-9a55-2d0f6f1b7a10")

_NOTIFYING = (UserFollowed, CommentPosted, ArticleLiked)
# Every event ``handle`` acts on (likes and unlikes in ``_likes``, the rest in its match);
# sessions, profiles, collections and reads pass it by.
_CONCERNS = concerning(
    ArticleDeleted,
    UserFollowed,
    CommentPosted,
    CommentDeleted,
    ArticleLiked,
    ArticleUnliked,
    NotificationsRead,
)

# How long a pushed notification's id is remembered: past the longest grace of a switched
# out generation (read_wait_s + generations_poll_s, at most 90 s) and any handover of
# partitions, short enough that the marks stay a few minutes of notifications.
PUSHED_TTL_S = 300

# KEYS: each notification's mark; ARGV[1]: the channel, ARGV[2]: the marks' TTL, then each
# notification's payload in the order of KEYS. Publishes those not marked yet; returns how
# many. A mark Redis refuses (out of memory: PUBLISH still works then) does not hold the
# push back: it goes unmarked, and each API process's memory of its recent pushes passes
# over a second one.
_PUSH_ONCE = """
local pushed = 0
for i, key in ipairs(KEYS) do
  if redis.pcall('SET', key, '1', 'NX', 'EX', ARGV[2]) ~= false then
    redis.call('PUBLISH', ARGV[1], ARGV[i + 2])
    pushed = pushed + 1
  end
end
return pushed
"""


class Pushes:
    """Notifications to the live channel, each once (``_PUSH_ONCE``)."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._script = redis.register_script(_PUSH_ONCE)
        self._prefix = prefix
        self.channel = notifications_channel(prefix)

    async def send(self, views: Sequence[dict[str, Any]]) -> int:
        """Publish each view (a notification as the API shows it) not pushed before; how
        many went."""
        if not views:
            return 0
        sent = await self._script(
            keys=[f"{self._prefix}:pushed:{view['id']}" for view in views],
            args=[self.channel, PUSHED_TTL_S, *(orjson.dumps(view) for view in views)],
        )
        return int(sent)


# The ids of the notifications a batch's transaction made, handed to its after-commit hook
# (a lane applies a batch and runs the hook in one task, one batch after the other): most
# batches of likes cross no milestone and make none, and then there is nothing to read
# back and push. Used only for the very list of records they were made from.
_MADE: ContextVar[tuple[Sequence[Recorded], list[str]] | None] = ContextVar(
    "notifications_made", default=None
)


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification to be: ``key`` names what caused it, once and for all."""

    key: str
    user_id: str
    kind: str
    actor_id: str
    article_id: str | None = None
    comment_id: str | None = None
    milestone: int | None = None

    @property
    def id(self) -> str:
        return str(uuid.uuid5(_IDS, self.key))


def notices_of(event: Event) -> list[Notice]:
    """The notifications a follow or a comment makes; never one to its own actor."""
    found: list[Notice] = []
    match event:
        case UserFollowed():
            pair = f"{event.follower_id}:{event.followee_id}"
            found.append(
                Notice(f"follower:{pair}", event.followee_id, "follower", event.follower_id)
            )
        case CommentPosted():
            on = (event.article_id, event.comment_id)
            replied = event.parent_author_id
            if replied is not None:
                found.append(
                    Notice(f"reply:{event.comment_id}", replied, "reply", event.author_id, *on)
                )
            # The article's author replied to is told once, of the reply.
            if event.article_author_id != replied:
                found.append(
                    Notice(
                        f"comment:{event.comment_id}",
                        event.article_author_id,
                        "comment",
                        event.author_id,
                        *on,
                    )
                )
    return [n for n in found if n.user_id != n.actor_id]


class NotificationsProjector(PostgresProjector):
    name = "notifications"
    families: tuple[Family, ...] = (
        Family.SOCIAL,
        Family.COMMENTS,
        Family.INTERACTIONS,
        Family.USERS,
        Family.ARTICLES,
    )

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        prefix: str,
        redis: Redis | None = None,
        generation: int = 1,
        cache: Cache | None = None,
    ) -> None:
        super().__init__(engine, generation=generation, cache=cache)
        self.redis = redis  # None: nothing is pushed (a replay tool's build)
        self.pushes = None if redis is None else Pushes(redis, prefix=prefix)

    @classmethod
    def build(
        cls, engine: AsyncEngine, settings: Settings, *, generation: int, cache: Cache | None
    ) -> Self:
        return cls(engine, prefix=settings.prefix, generation=generation, cache=cache)

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        # A generation being built (a replay, a migration's quiet store) has the same Redis
        # as the live one: only ``live`` keeps its commits off the live sockets.
        projector = cls(
            stores.engine,
            prefix=stores.settings.prefix,
            redis=stores.redis if stores.live else None,
            generation=generation,
            cache=stores.cache,
        )
        projector.live = stores.live
        return projector

    def concerns(self, record: Recorded) -> bool:
        return _CONCERNS(record)

    def passes_over(self, model: type[Event]) -> bool:
        return not _CONCERNS.model(model)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        await self._hold_recipients(conn, records)
        # Read after the locks: a delete committed meanwhile is seen.
        gone = await _deleted_among(conn, _articles_of(records))
        # Likes first, all at once: read marks hold in whatever order they meet the
        # notifications they cover (see _already_read), so the rest keeps its log order.
        made = await self._likes(conn, records, gone)
        for rec in records:
            ev = rec.event
            match ev:
                case UserFollowed():
                    made.extend(await self._notify_all(conn, ev, rec))
                case CommentPosted():
                    # Its thread row even under a deleted article: a replay that reads it
                    # before the delete keeps it too.
                    if not await threads.stands(conn, ev):
                        continue
                    if ev.article_id in gone:
                        await _removed_already(conn, notices_of(ev), rec)
                    else:
                        made.extend(await self._notify_all(conn, ev, rec))
                case CommentDeleted():
                    await threads.deleted(conn, ev)
                case NotificationsRead():
                    await self._read(conn, ev)
                case ArticleDeleted():
                    await _article_deleted(conn, ev.article_id)
                    gone.add(ev.article_id)
        _MADE.set((records, made))

    async def _notify_all(
        self, conn: AsyncConnection, ev: UserFollowed | CommentPosted, rec: Recorded
    ) -> list[str]:
        """The ids of the notifications ``ev`` made (none new on a re-delivery)."""
        return [n.id for n in notices_of(ev) if await self._notify(conn, n, rec)]

    async def _hold_recipients(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        """Lock, until the commit, every user this batch may notify or mark read.

        Lanes apply other partitions' batches at the same time, and a read mark (users
        topic) racing a notification it covers (social, comments or interactions topic)
        would otherwise each miss the other's uncommitted row: the insert finds no mark,
        the mark's update finds no row, and the notification stays unread for good. With
        the lock the later of the two waits, and its next statement sees the other's
        commit. Locks are taken in one sorted order, so two lanes never deadlock."""
        keys = sorted({_lock_key(self.schema, user) for user in _recipients(records)})
        if keys:
            await conn.execute(_HOLD, {"keys": keys})

    async def _notify(self, conn: AsyncConnection, notice: Notice, rec: Recorded) -> bool:
        """Insert the notification; whether it is new (a re-delivery finds it made)."""
        n = notifications.c
        at = rec.envelope.occurred_at
        made = await conn.execute(
            insert(notifications)
            .values(
                id=notice.id,
                user_id=notice.user_id,
                kind=notice.kind,
                actor_id=notice.actor_id,
                article_id=notice.article_id,
                comment_id=notice.comment_id,
                milestone=notice.milestone,
                event_id=rec.envelope.event_id,
                created_at=at,
                read=_already_read(notice.user_id, notice.id, at),
            )
            .on_conflict_do_nothing(index_elements=[n.id])
            .returning(n.id)
        )
        return made.first() is not None

    async def _likes(
        self, conn: AsyncConnection, recs: Sequence[Recorded], gone: set[str]
    ) -> list[str]:
        """A batch's likes and unlikes (``like_milestones.apply``); the ids of the
        notifications made of the milestones they crossed (none for a deleted article)."""
        made = []
        for crossed in await milestones.apply(conn, recs):
            ev = crossed.event
            notice = Notice(
                f"likes:{ev.article_id}:{crossed.likes}",
                ev.author_id,
                "like_milestone",
                ev.user_id,
                article_id=ev.article_id,
                milestone=crossed.likes,
            )
            if ev.article_id in gone:
                await _removed_already(conn, [notice], crossed.record)
                continue
            if await self._notify(conn, notice, crossed.record):
                made.append(notice.id)
        return made

    async def _read(self, conn: AsyncConnection, ev: NotificationsRead) -> None:
        n = notifications.c
        if ev.ids:
            await conn.execute(
                insert(notification_marks)
                .values([{"user_id": ev.user_id, "notification_id": i} for i in ev.ids])
                .on_conflict_do_nothing()
            )
            await conn.execute(
                update(notifications)
                .where(n.user_id == ev.user_id, n.id.in_(ev.ids), ~n.read)
                .values(read=True)
            )
        if ev.up_to_at is not None and ev.up_to_id is not None:
            await self._read_up_to(conn, ev.user_id, ev.up_to_at, ev.up_to_id)

    async def _read_up_to(
        self, conn: AsyncConnection, user_id: str, up_to_at: datetime, up_to_id: str
    ) -> None:
        w = read_watermarks.c
        new = insert(read_watermarks).values(user_id=user_id, up_to_at=up_to_at, up_to_id=up_to_id)
        # The watermark only moves forward: an older mark applied late changes nothing.
        await conn.execute(
            new.on_conflict_do_update(
                index_elements=[w.user_id],
                set_={"up_to_at": new.excluded.up_to_at, "up_to_id": new.excluded.up_to_id},
                where=tuple_(new.excluded.up_to_at, new.excluded.up_to_id)
                > tuple_(w.up_to_at, w.up_to_id),
            )
        )
        n = notifications.c
        await conn.execute(
            update(notifications)
            .where(
                n.user_id == user_id,
                ~n.read,
                tuple_(n.created_at, n.id) <= _position(up_to_at, up_to_id),
            )
            .values(read=True)
        )

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        await super().after_commit(records)
        made, _ = _MADE.get(), _MADE.set(None)
        if not self.live or self.redis is None:
            return
        n = notifications.c
        if made is not None and made[0] is records:
            if not made[1]:
                return
            stmt = select(notifications).where(n.id.in_(made[1]), ~n.read)
        else:  # applied one event at a time (a batch that failed whole)
            causes = [r.envelope.event_id for r in records if isinstance(r.event, _NOTIFYING)]
            if not causes:
                return
            # Only rows these very events made: a cause that made nothing new (a
            # re-follow, a like past no milestone) finds no row with its event id.
            stmt = select(notifications).where(n.event_id.in_(causes), ~n.read)
        async with self.engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: self.schema})
            rows = list(await conn.execute(stmt))
        if rows and self.pushes is not None:
            await self.pushes.send([notification_view(row) for row in rows])


def _recipients(records: Sequence[Recorded]) -> set[str]:
    """Everyone a batch may notify (a like's author, whether or not it crosses a
    milestone) or whose read marks it holds, and (as ``article:<id>``) every article it
    may notify of or deletes."""
    users: set[str] = set()
    for rec in records:
        ev = rec.event
        match ev:
            case UserFollowed() | CommentPosted():
                users.update(n.user_id for n in notices_of(ev))
            case ArticleLiked():
                users.add(ev.author_id)
            case NotificationsRead():
                users.add(ev.user_id)
    return users | {f"article:{a}" for a in _articles_of(records)}


def _articles_of(records: Sequence[Recorded]) -> set[str]:
    """The articles a batch may notify of, or deletes."""
    return {
        rec.event.article_id
        for rec in records
        if isinstance(rec.event, CommentPosted | ArticleLiked | ArticleDeleted)
    }


async def _deleted_among(conn: AsyncConnection, article_ids: set[str]) -> set[str]:
    if not article_ids:
        return set()
    d = deleted_articles.c
    found = await conn.execute(select(d.article_id).where(d.article_id.in_(sorted(article_ids))))
    return {str(a) for (a,) in found}


async def _removed_already(conn: AsyncConnection, notices: list[Notice], rec: Recorded) -> None:
    """Notifications of an article deleted before they were applied, kept as removed as
    they would have been had they come first: live and a replay, which may read the two
    topics in either order, keep the same rows."""
    if notices:
        await conn.execute(
            insert(removed_notifications)
            .values(
                [
                    {"id": n.id, "user_id": n.user_id, "created_at": rec.envelope.occurred_at}
                    for n in notices
                ]
            )
            .on_conflict_do_nothing()
        )


async def _article_deleted(conn: AsyncConnection, article_id: str) -> None:
    """The article remembered as deleted, and every notification about it gone (read or
    not). Pushes already sent stay sent."""
    await conn.execute(
        insert(deleted_articles).values(article_id=article_id).on_conflict_do_nothing()
    )
    await conn.execute(removing(notifications.c.article_id == article_id))


def _lock_key(schema: str, user_id: str) -> int:
    """A transaction-level advisory lock key for one user in one generation."""
    digest = hashlib.blake2b(f"notifications:{schema}:{user_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _already_read(user_id: str, notification_id: str, at: datetime) -> ColumnElement[bool]:
    """Whether a read mark applied before the notification itself already covers it."""
    marks = notification_marks.c
    w = read_watermarks.c
    marked = exists().where(marks.user_id == user_id, marks.notification_id == notification_id)
    below = exists().where(
        w.user_id == user_id,
        tuple_(w.up_to_at, w.up_to_id)
        >= tuple_(
            literal(at, DateTime(timezone=True)), literal(notification_id, UUID(as_uuid=False))
        ),
    )
    return or_(marked, below)


def _position(at: datetime, notification_id: str) -> ColumnElement[Any]:
    """A (created_at, id) pair as typed SQL values, to compare with the columns."""
    return tuple_(
        literal(at, DateTime(timezone=True)), literal(notification_id, UUID(as_uuid=False))
    )


_HOLD = text(
    "SELECT count(pg_advisory_xact_lock(k))"
    " FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS held"
)
