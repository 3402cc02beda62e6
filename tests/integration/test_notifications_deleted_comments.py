"""A deleted comment takes its notifications with it, and those of every reply under it
(at any depth, through replies that notified no one); a reply to it applied after the
delete notifies no one. A replay builds the same notifications as live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bloghub.events.base import Event
from bloghub.events.comments import CommentDeleted, CommentPosted
from bloghub.events.log import EventLog
from bloghub.events.notifications import NotificationsRead
from bloghub.ids import new_id_str
from bloghub.projections.notifications import Notice, NotificationsProjector
from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting, read_topic
from tests.support import append_events, applied, replay_generation, wait_until


@pytest.fixture(scope="module")
async def deleted_settings(run_id: str) -> AsyncIterator[Settings]:
    async with isolated(run_id, "notifydel") as s:
        yield s


class Thread:
    """One article of ``author``'s and the comments posted under it."""

    def __init__(self, author: str) -> None:
        self.article, self.author = new_id_str(), author
        self.by: dict[str, str] = {}
        self.root: dict[str, str | None] = {}

    def post(self, who: str, parent: str | None = None) -> tuple[str, CommentPosted]:
        comment = new_id_str()
        self.by[comment] = who
        self.root[comment] = None if parent is None else self.root[parent] or parent
        event = CommentPosted(
            article_id=self.article,
            comment_id=comment,
            author_id=who,
            article_author_id=self.author,
            parent_id=parent,
            root_id=self.root[comment],
            parent_author_id=None if parent is None else self.by[parent],
            content="words",
        )
        return comment, event

    def delete(self, comment: str) -> CommentDeleted:
        return CommentDeleted(article_id=self.article, comment_id=comment, deleted_by=self.author)


async def _append(settings: Settings, events: list[Event]) -> None:
    log = EventLog.from_settings(settings)
    await log.start()
    try:
        for event in events:  # one by one, as live requests record them
            await append_events(log, [event])
    finally:
        await log.close()


async def _log_size(settings: Settings) -> int:
    topics = [f"{settings.prefix}.{f.value}" for f in NotificationsProjector.families]
    return sum([len(await read_topic(settings, t)) for t in topics])


async def _told(settings: Settings, user: str) -> list[tuple[str, str, str | None]]:
    """What ``user``'s list shows: (kind, actor, comment), and how many are unread."""
    async with pg(settings) as conn:
        rows = await conn.fetch(
            "SELECT kind, actor_id::text, comment_id::text FROM notifications_g1.notifications"
            " WHERE user_id = $1 ORDER BY created_at, id",
            user,
        )
    return [(r[0], r[1], r[2]) for r in rows]


async def _unread(settings: Settings, user: str) -> int:
    async with pg(settings) as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM notifications_g1.notifications WHERE user_id = $1 AND NOT read",
            user,
        )
    return int(found)


async def _table(settings: Settings, generation: int, table: str) -> list[tuple[Any, ...]]:
    async with pg(settings) as conn:
        rows = await conn.fetch(f"SELECT * FROM notifications_g{generation}.{table} ORDER BY 1, 2")
    return [tuple(r) for r in rows]


def _story(a: str, b: str, c: str, d: str) -> tuple[list[Event], dict[str, str]]:
    """On ``a``'s article: a thread under a's own comment (whose first reply, a's too,
    notifies no one) that is deleted, a reply to it that comes after the delete, and a
    thread that stays."""
    t = Thread(a)
    gone, top = t.post(a)
    quiet, to_quiet = t.post(a, gone)  # a replying to a on a's article: no one is told
    deep, to_deep = t.post(b, quiet)  # a is told of b's reply
    deeper, to_deeper = t.post(c, deep)  # b of c's reply, a of c's comment
    kept, to_kept = t.post(d)  # a is told of d's comment
    under_kept, to_under_kept = t.post(b, kept)  # d of b's reply, a of b's comment
    _, to_late = t.post(c, gone)  # accepted just before the delete, applied after it
    read_deep = NotificationsRead(user_id=a, ids=[Notice(f"reply:{deep}", a, "reply", b).id])
    events: list[Event] = [
        top,
        to_quiet,
        to_deep,
        to_deeper,
        to_kept,
        read_deep,
        t.delete(gone),
        to_late,
        to_under_kept,
        t.delete(gone),  # a second delete finds nothing more to remove
    ]
    ids = {"deep": deep, "deeper": deeper, "kept": kept, "under_kept": under_kept}
    return events, ids


async def projected(s: Settings, events: list[Event]) -> int:
    """``events`` appended and applied live by the notifications projector; the log's size."""
    async with projecting(s, "notifications"):
        await _append(s, events)
        total = await _log_size(s)

        async def all_applied() -> bool:
            return await applied(s, "notifications") >= total

        await wait_until(all_applied)
    return total


async def _projected_story(
    s: Settings, a: str, b: str, c: str, d: str
) -> tuple[dict[str, str], int]:
    """``_story`` appended and applied live: its comment ids, and the log's size."""
    events, ids = _story(a, b, c, d)
    return ids, await projected(s, events)


async def test_a_deleted_comment_takes_the_notifications_of_its_thread_with_it(
    deleted_settings: Settings,
) -> None:
    s = deleted_settings
    a, b, c, d = (new_id_str() for _ in range(4))
    ids, _ = await _projected_story(s, a, b, c, d)
    # a keeps only what is about the thread still there, all of it unread.
    assert await _told(s, a) == [("comment", d, ids["kept"]), ("comment", b, ids["under_kept"])]
    assert await _unread(s, a) == 2
    # b was told of c's reply under the deleted comment: gone too.
    assert await _told(s, b) == []
    assert await _told(s, c) == []
    assert await _told(s, d) == [("reply", b, ids["under_kept"])]


async def test_a_replay_builds_the_same_notifications_as_live(
    deleted_settings: Settings,
) -> None:
    s = deleted_settings
    _, total = await _projected_story(s, *(new_id_str() for _ in range(4)))
    await replay_generation(s, NotificationsProjector, 2, until=total)
    for table in ("notifications", "comment_threads", "notification_marks"):
        live = await _table(s, 1, table)
        assert live != [], table
        assert await _table(s, 2, table) == live, table
