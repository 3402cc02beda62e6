"""Comment commands: post a comment or a reply on a published article, delete one with
its whole subtree. Decided on the read models as of the caller's own last write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from bloghub.commands.comment_numbers import reserve_number
from bloghub.commands.context import Caller, CommandDeps
from bloghub.commands.turns import turn
from bloghub.errors import Forbidden, InvalidInput, NotFound
from bloghub.events.comments import CommentDeleted, CommentPosted
from bloghub.events.log import Indeterminate
from bloghub.events.position import Position
from bloghub.ids import new_id_str, time_of


@dataclass(frozen=True, slots=True)
class CommentRef:
    """A live comment, as a decision needs it."""

    id: str
    article_id: str
    article_author_id: str
    author_id: str
    root_id: str | None


@dataclass(frozen=True, slots=True)
class Posted:
    comment_id: str
    root_id: str | None
    position: Position
    number: int | None
    at: datetime  # when it was posted (its id's time): its event's time, the one reads show


async def post_comment(
    article: tuple[str, str] | None,
    parent: CommentRef | None,
    parent_id: str | None,
    content: str,
    deps: CommandDeps,
    caller: Caller,
) -> Posted:
    """``article`` is the published article's (id, author id), None if there is none."""
    author = _signed_in(caller)
    if article is None:
        raise NotFound("no such article")
    article_id, article_author = article
    if parent_id is not None and (parent is None or parent.article_id != article_id):
        # Unknown, deleted, or under another article: nothing to reply to here.
        raise InvalidInput("no such comment under this article", fields={"parent_id": "not found"})
    root = None if parent is None else parent.root_id or parent.id
    comment_id = new_id_str()
    number, key = await reserve_number(deps, comment_id)
    event = CommentPosted(
        article_id=article_id,
        comment_id=comment_id,
        number=number,
        author_id=author,
        article_author_id=article_author,
        parent_id=parent_id,
        root_id=root,
        parent_author_id=None if parent is None else parent.author_id,
        content=content,
    )
    # The time its id was made, not the time it is appended: threads list comments in id
    # order, and comments posted at once must not show their times out of that order.
    at = time_of(comment_id)
    try:
        position = await deps.record_holding(caller, key, event, at=at)
    except Indeterminate as unsure:
        # The comment may still be recorded: whoever waits for it learns its id with it.
        raise unsure.then(lambda pos: Posted(comment_id, root, pos, number, at)) from unsure
    return Posted(comment_id, root, position, number, at)


async def delete_comment(comment: CommentRef | None, deps: CommandDeps, caller: Caller) -> Position:
    """Its author may delete a comment, and so may the author of the article it is under."""
    who = _signed_in(caller)
    if comment is None:
        raise NotFound("no such comment")
    if who not in (comment.author_id, comment.article_author_id):
        raise Forbidden("only its author or the article's author may delete a comment")
    event = CommentDeleted(article_id=comment.article_id, comment_id=comment.id, deleted_by=who)
    return await deps.record(caller, event)


def _signed_in(caller: Caller) -> str:
    if caller.actor_id is None:
        raise Forbidden("sign in to comment")
    return caller.actor_id


COMMENTS_TURN = "comments_turn"
# Held only while a reply or a delete decides and records; a longer wait means the
# projectors lag or Kafka is slow, and a retry is the better answer.
COMMENTS_TURN_WAIT_S = 2.0


@asynccontextmanager
async def comments_turn(deps: CommandDeps, article_id: str) -> AsyncIterator[None]:
    """The turn of an article's comment threads (commands/turns.py), taken by a reply and
    by a delete, for the whole of its decision and its append, a delete's until it has
    remembered what it hid. A reply checks that no comment above it was deleted, then
    appends; without the turn a delete could be appended in between, and the projector
    would drop the reply (its parent gone) after it was answered 201. With it, a reply
    lands before the delete (and goes with the deleted subtree) or decides after the
    delete was remembered (and is refused). A comment that replies to none takes no turn.
    The turn ends off the request path, after the steps the command left."""
    busy = "another reply or delete in this article's comments is in progress; retry"
    async with turn(deps, COMMENTS_TURN, article_id, wait_s=COMMENTS_TURN_WAIT_S, busy=busy):
        yield
