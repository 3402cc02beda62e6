"""RealWorld's comments: the threaded comments of ``/v1`` shown flat (top-level comments
and replies in one list, newest first); a new comment is a top-level one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.conduit.articles import READS, _published, _still_shown
from bloghub.api.conduit.errors import ConduitError, conduit_body, forbidden, not_found, path_text
from bloghub.api.conduit.reading import (
    caught_up,
    maybe_signed_in,
    people,
    queries,
    shown_as_author,
    signed_in,
)
from bloghub.api.conduit.schemas import NewCommentIn
from bloghub.api.conduit.views import timestamp
from bloghub.api.consistent import found_or_settled, visibility_written, written
from bloghub.api.http import JSON, container
from bloghub.api.idempotency import answering, idempotent
from bloghub.api.v1.comments import COMMENTS_READS, comment_queries
from bloghub.api.v1.path_ids import canonical_id
from bloghub.api.v1.sessions import caller
from bloghub.commands.comments import (
    CommentRef,
    Posted,
    comments_turn,
    delete_comment,
    post_comment,
)
from bloghub.errors import Forbidden
from bloghub.events.topics import Family

SHOWN_READS = [*READS, *COMMENTS_READS]


def comment_view(row: Any, author: dict[str, Any]) -> dict[str, Any]:
    at = timestamp(row.created_at)
    return {
        # RealWorld's ids are integers: the public number (a comment from before numbers
        # keeps its UUID, the only name it has).
        "id": str(row.id) if row.number is None else row.number,
        "createdAt": at,
        "updatedAt": at,
        "body": row.content,
        "author": author,
    }


async def listing(request: Request) -> Response:
    claims = await maybe_signed_in(request)
    me = claims.user_id if claims else None
    await caught_up(request, SHOWN_READS, me)
    article = await _published(request, me)
    rows = await queries(request).comments(article.id)
    authors = await people(request, me, [str(r.author_id) for r in rows])
    return JSON({"comments": [comment_view(r, authors[str(r.author_id)]) for r in rows]})


async def create(request: Request) -> Response:
    claims = await signed_in(request)
    me = claims.user_id
    body = (await conduit_body(request, NewCommentIn)).comment.body
    shown_as_author(request)
    await caught_up(request, SHOWN_READS, me)
    article = await _still_shown(request, me, SHOWN_READS)
    # Read before the write: once it is recorded, nothing may turn its answer into an error.
    (author,) = (await people(request, me, [me])).values()

    async def respond(done: Posted) -> Response:
        shown = _Posted(done.comment_id, done.number, me, body, done.at)
        out = JSON({"comment": comment_view(shown, author)}, status_code=201)
        return await written(request, out, done.position, me)

    async def run() -> Response:
        deps, who = container(request).commands, caller(request, me)
        target = (article.id, article.author_id)
        return await answering(post_comment(target, None, None, body, deps, who), respond)

    return await idempotent(request, me, run)


async def remove(request: Request) -> Response:
    claims = await signed_in(request)
    me = claims.user_id
    await caught_up(request, SHOWN_READS, me)
    article_id, shown = await _commented(request, me)

    async def look() -> CommentRef | None:
        comment_id = await _comment_id(request, article_id)
        return None if comment_id is None else await comment_queries(request).ref(comment_id)

    # A comment its article's author learned of from a notification (another projector)
    # may not be applied here yet: waited for, as on /v1, not said not to exist.
    comment = await found_or_settled(request, COMMENTS_READS, Family.COMMENTS, look, article_id)
    if comment is None or comment.article_id != article_id:
        raise not_found("comment")
    if not shown and me not in (comment.author_id, comment.article_author_id):
        raise not_found("article")  # as a read says: nothing tells anyone else it is there
    deps = container(request).commands
    async with comments_turn(deps, comment.article_id):  # as /v1's (api/v1/comments.py)
        try:
            position = await delete_comment(comment, deps, caller(request, me))
        except Forbidden:
            raise forbidden("comment") from None
        # Hidden for replies too (none through /api, but /v1's of the same comment).
        out = Response(status_code=204)
        return await visibility_written(request, out, position, me, comment.id)


async def _commented(request: Request, me: str) -> tuple[str, bool]:
    """The id of the article the path names, and whether it is published. A withdrawn
    article's comments are hidden with it, yet each stays its writer's and the article
    author's to delete, as on ``/v1``; to anyone else the article is not there."""
    try:
        return (await _published(request, me)).id, True
    except ConduitError as exc:
        if exc.status != 404:
            raise
        row = await queries(request).by_slug(path_text(request, "slug", "article"))
        if row is None or row.status != "withdrawn":
            raise
        return str(row.id), False


async def _comment_id(request: Request, article_id: str) -> str | None:
    """The comment the path names under the article: by its number, or by its UUID."""
    raw = request.path_params["comment_id"]
    if raw.isascii() and raw.isdigit() and len(raw) <= 16:
        return await queries(request).comment_numbered(article_id, int(raw))
    found = canonical_id(raw)
    if found is None:
        raise not_found("comment")
    return found


@dataclass(frozen=True, slots=True)
class _Posted:
    """A comment as its author just wrote it, shaped as a read-model row."""

    id: str
    number: int | None
    author_id: str
    content: str
    created_at: datetime
