"""Who is told of what, and when a like count is a milestone: the pure rules of the
notifications projector, and a live socket's bounded backlog."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import cast

from hypothesis import given
from hypothesis import strategies as st
from starlette.websockets import WebSocket

from bloghub.api.notification_queries import CURSOR_PATTERN, cursor_of
from bloghub.api.v1.notifications import NotificationsQuery
from bloghub.events.comments import CommentPosted
from bloghub.events.social import UserFollowed
from bloghub.live.socket import HARD_BACKLOG, SLOW, LiveSocket
from bloghub.projections.like_milestones import is_milestone, milestone_reached
from bloghub.projections.notifications import notices_of


def test_milestones_are_one_and_the_powers_of_ten() -> None:
    found = [n for n in range(1, 100_001) if is_milestone(n)]
    assert found == [1, 10, 100, 1000, 10_000, 100_000]
    for likes in range(0, 100_001, 7):
        assert milestone_reached(likes) == max((m for m in found if m <= likes), default=0)


def test_a_follow_tells_the_followee_and_never_oneself() -> None:
    (notice,) = notices_of(UserFollowed(follower_id="b", followee_id="a"))
    assert (notice.user_id, notice.kind, notice.actor_id) == ("a", "follower", "b")
    assert notices_of(UserFollowed(follower_id="a", followee_id="a")) == []


def _comment(author: str, article_author: str, parent_author: str | None) -> CommentPosted:
    return CommentPosted(
        article_id="art",
        comment_id="c",
        author_id=author,
        article_author_id=article_author,
        parent_id="p" if parent_author else None,
        parent_author_id=parent_author,
        content="x",
    )


def test_a_reply_tells_the_parent_author_and_the_article_author_once() -> None:
    told = {(n.user_id, n.kind) for n in notices_of(_comment("c", "a", "b"))}
    assert told == {("b", "reply"), ("a", "comment")}
    # Replying to the article author's own comment: one notification, the reply.
    assert {(n.user_id, n.kind) for n in notices_of(_comment("c", "a", "a"))} == {("a", "reply")}
    # Nobody is told of their own comment or reply.
    assert notices_of(_comment("a", "a", None)) == []
    assert {(n.user_id, n.kind) for n in notices_of(_comment("b", "a", "b"))} == {("a", "comment")}


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_ids_depend_only_on_the_cause(follower: str, followee: str) -> None:
    event = UserFollowed(follower_id=follower, followee_id=followee)
    assert [n.id for n in notices_of(event)] == [n.id for n in notices_of(event.model_copy())]


def _unserved(queue_max: int = 3) -> LiveSocket:
    # The socket is never served here: only its backlog is under test.
    return LiveSocket(
        cast(WebSocket, None),
        user_id="u",
        session_id="s",
        process_id="p",
        queue_max=queue_max,
        slow_after_s=5.0,
    )


async def test_a_burst_past_the_bound_waits_for_a_client_that_reads() -> None:
    """A projector batch may bring a hundred notifications at once: a client reading them
    is not dropped for the burst, only one past the hard bound."""
    sock = _unserved(queue_max=3)
    for _ in range(HARD_BACKLOG * 3):
        sock.offer("{}")
    assert sock.reason is None
    sock.offer("{}")
    assert sock.reason == SLOW


async def test_a_socket_behind_that_sends_nothing_is_dropped_not_buffered() -> None:
    sock = _unserved(queue_max=3)
    for _ in range(4):
        sock.offer("{}")
    assert sock.reason is None
    # Behind for longer than the bound with nothing sent meanwhile: the client stopped.
    stalled = asyncio.get_running_loop().time() - 6.0
    sock.last_sent = stalled
    sock._behind_since = stalled
    sock.offer("{}")
    assert sock.reason == SLOW


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.uuids(),
)
def test_every_cursor_handed_out_is_one_the_query_accepts(at: datetime, nid: uuid.UUID) -> None:
    cursor = cursor_of(at, str(nid))
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert NotificationsQuery.model_validate({"cursor": cursor}).cursor == cursor
