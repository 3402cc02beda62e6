"""A deleted article takes its notifications with it (comments on it, replies under it,
its like milestones), and a comment or like on it applied after the delete (their topics
keep no order with the articles topic) notifies no one. A replay builds the same
notifications as live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bloghub.adapters.postgres.generations import create_generation
from bloghub.events.articles import ArticleDeleted
from bloghub.events.base import Event
from bloghub.events.interactions import ArticleLiked
from bloghub.ids import new_id_str
from bloghub.projections.notifications import NotificationsProjector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.settings import Settings
from tests.conftest import isolated, pg
from tests.integration.test_notifications_deleted_comments import (
    Thread,
    _table,
    _told,
    _unread,
    projected,
)
from tests.support import recorded, replay_generation


@pytest.fixture(scope="module")
async def gone_settings(run_id: str) -> AsyncIterator[Settings]:
    async with isolated(run_id, "notifygone") as s:
        yield s


def _liked(thread: Thread, who: str) -> ArticleLiked:
    return ArticleLiked(article_id=thread.article, author_id=thread.author, user_id=who)


def _story(a: str, b: str, c: str, d: str) -> tuple[list[Event], dict[str, str]]:
    """Two articles of ``a``'s: the first commented on, replied under and liked, then
    deleted, with a comment and a like on it applied after the delete; the second
    commented on, and kept."""
    doomed, kept = Thread(a), Thread(a)
    first, to_first = doomed.post(b)  # a is told of b's comment
    _, to_reply = doomed.post(c, first)  # b of c's reply, a of c's comment
    _, to_late = doomed.post(d)  # accepted just before the delete, applied after it
    stays, to_stays = kept.post(d)  # a is told of d's comment
    delete = ArticleDeleted(article_id=doomed.article, author_id=a, version=3)
    events: list[Event] = [
        to_first,
        to_reply,
        _liked(doomed, b),  # the first like: a milestone a is told of
        to_stays,
        delete,
        to_late,
        _liked(kept, c),  # the kept article's first like: told
        delete,  # a second delete finds nothing more to remove
    ]
    return events, {"stays": stays, "kept_article": kept.article}


async def _projected_story(
    s: Settings, a: str, b: str, c: str, d: str
) -> tuple[dict[str, str], int]:
    events, ids = _story(a, b, c, d)
    return ids, await projected(s, events)


async def test_a_deleted_article_takes_its_notifications_with_it(gone_settings: Settings) -> None:
    s = gone_settings
    a, b, c, d = (new_id_str() for _ in range(4))
    ids, _ = await _projected_story(s, a, b, c, d)
    told = await _told(s, a)
    assert ("comment", d, ids["stays"]) in told
    assert ("like_milestone", c, None) in told
    assert len(told) == 2, told  # nothing about the deleted article, late ones included
    assert await _unread(s, a) == 2
    assert await _told(s, b) == []  # c's reply under the deleted article: gone too


async def test_a_replay_builds_the_same_notifications_as_live(gone_settings: Settings) -> None:
    s = gone_settings
    _, total = await _projected_story(s, *(new_id_str() for _ in range(4)))
    await replay_generation(s, NotificationsProjector, 2, until=total)
    # The late comment's thread row too: live applied it after the delete, and keeps it.
    for table in ("notifications", "comment_threads", "removed_notifications"):
        live = await _table(s, 1, table)
        assert live != [], table
        assert await _table(s, 2, table) == live, table
    async with pg(s) as conn:
        deleted = [
            await conn.fetch(
                f"SELECT article_id FROM notifications_g{g}.deleted_articles ORDER BY 1"
            )
            for g in (1, 2)
        ]
    assert deleted[0] != []
    assert deleted[1] == deleted[0]


async def test_the_same_rows_whichever_of_a_delete_and_a_comment_comes_first(
    gone_settings: Settings,
) -> None:
    """Live and a replay may read the articles topic and the comments or interactions
    topic in either order: the read model comes out the same."""
    s = gone_settings
    a, b, c = (new_id_str() for _ in range(3))
    doomed = Thread(a)
    _, commented = doomed.post(b)
    records = [
        recorded(commented, topic=f"{s.prefix}.comments", partition=0, offset=0),
        recorded(_liked(doomed, c), topic=f"{s.prefix}.interactions", partition=0, offset=0),
        recorded(
            ArticleDeleted(article_id=doomed.article, author_id=a, version=3),
            topic=f"{s.prefix}.articles",
            partition=0,
            offset=0,
        ),
    ]
    engine = projector_engine(s.sqlalchemy_url, pool_size=2)
    try:
        for generation, order in ((3, records), (4, [records[2], *records[:2]])):
            async with engine.begin() as conn:
                await create_generation(conn, "notifications", generation, activate=False)
            projector = NotificationsProjector(engine, prefix=s.prefix, generation=generation)
            for rec in order:  # each its own batch, as each is its own partition's
                await projector.apply([rec], {(rec.topic, rec.partition): rec.offset + 1})
    finally:
        await engine.dispose()
    for table in ("notifications", "comment_threads", "removed_notifications"):
        assert await _table(s, 3, table) == await _table(s, 4, table), table
    assert [r[0] for r in await _table(s, 3, "removed_notifications")] != []
    assert await _table(s, 4, "notifications") == []
