"""Threaded comments over HTTP. Content is plain text, stored and returned as sent (JSON
strings), never rendered as HTML."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import optional_caller, require_caller
from bloghub.api.comment_queries import CommentQueries
from bloghub.api.consistent import (
    found_or_settled,
    mark_stale,
    pinned,
    visibility_written,
    wait_for_reads,
    written,
)
from bloghub.api.http import JSON, Endpoint, container, parse_body, parse_query
from bloghub.api.idempotency import answering, idempotent
from bloghub.api.v1.article_schemas import AuthorOut
from bloghub.api.v1.articles import (
    ARTICLES_READS,
    IDEMPOTENT,
    WITH_AUTHORS_READS,
    author_out,
    authors_out,
    paged,
    queries,
)
from bloghub.api.v1.path_ids import path_id
from bloghub.api.v1.sessions import caller
from bloghub.api.v1.social_schemas import (
    CommentEnvelope,
    CommentIn,
    CommentOut,
    RepliesPage,
    RepliesQuery,
    ThreadOut,
    ThreadsPage,
    ThreadsQuery,
)
from bloghub.commands.comments import (
    CommentRef,
    Posted,
    comments_turn,
    delete_comment,
    post_comment,
)
from bloghub.errors import CatchingUp, NotFound
from bloghub.events.topics import Family

COMMENTS_READS = [("comments", (Family.COMMENTS,))]
# A comment is shown with its author's name; a thread only under a published article.
SHOWN_READS = [*COMMENTS_READS, *WITH_AUTHORS_READS]


def comment_queries(request: Request) -> CommentQueries:
    return CommentQueries(container(request).read_engine, pinned(request))


def _shown(row: Any) -> tuple[str, str] | None:
    """The article's id and author if ``row`` is published."""
    if row is None or row.status != "published":
        return None
    return str(row.id), str(row.author_id)


async def _published(request: Request, article_id: str) -> tuple[str, str] | None:
    return _shown(await queries(request).published(article_id))


async def _settled_article(request: Request, article_id: str) -> Any:
    """The article's row; one missing or not published is looked for again once the read
    model has passed its partition's records written before this request (a publish, or
    a republish after a withdraw, another author was answered for a moment before)."""

    async def look() -> Any:
        row = await queries(request).published(article_id)
        return None if row is None or row.status != "published" else row

    found = await found_or_settled(request, ARTICLES_READS, Family.ARTICLES, look, article_id)
    return found if found is not None else await queries(request).published(article_id)


async def _comment_ref(request: Request, comment_id: str) -> CommentRef | None:
    """The comment, as the read model has it once it has caught up with the log as it
    stands: a comment the caller learned of elsewhere (a notification, pushed by another
    projector) may not be applied here yet, and is then waited for rather than said not
    to exist (``found_or_settled``)."""
    return await found_or_settled(
        request, COMMENTS_READS, Family.COMMENTS, lambda: comment_queries(request).ref(comment_id)
    )


async def _decide_after_own_writes(request: Request, user_id: str, *hidden: str) -> bool:
    """Decide on the read models as of the caller's own last write; a new comment also as
    of the last withdraw or delete of its article and of the comment it replies to
    (``hidden``), whoever made it: no comment lands on an article whose withdraw was
    answered, nor a reply on a comment whose delete was, however far the projectors lag
    (as a like does not). Whether any of ``hidden`` was hidden lately (its mark waited
    for)."""
    also = None
    if hidden:
        also = await container(request).own_writes.visibility_changed(*hidden)
    if await wait_for_reads(request, [*COMMENTS_READS, *ARTICLES_READS], user_id, also):
        # With ``also`` (the last withdraw or delete of what it lands on, whoever made it,
        # maybe long applied) the write still ahead may be the caller's or another's.
        change = "a recent change" if also else "your last change"
        raise CatchingUp(f"{change} is still being applied; try again in a moment")
    return bool(also)


async def post(request: Request) -> Response:
    claims = await require_caller(request)
    article_id = path_id(request, "article_id", "article")
    body = await parse_body(request, CommentIn)
    parent_id = None if body.parent_id is None else str(body.parent_id)

    async def respond(done: Posted) -> Response:
        out = CommentOut(
            id=done.comment_id,
            article_id=article_id,
            author=await author_out(request, claims.user_id, settle=False),
            parent_id=parent_id,
            root_id=done.root_id,
            content=body.content,
            created_at=done.at,
        )
        response = JSON(CommentEnvelope(comment=out).model_dump(mode="json"), status_code=201)
        return await written(request, response, done.position, claims.user_id)

    async def run() -> Response:
        if parent_id is None:
            return await decide_and_post()
        # No delete above the reply is appended between its checks and its append.
        async with comments_turn(container(request).commands, article_id):
            return await decide_and_post()

    async def decide_and_post() -> Response:
        replied = () if parent_id is None else (parent_id,)
        await _decide_after_own_writes(request, claims.user_id, article_id, *replied)
        # An article another author's publish made a moment before is waited for.
        article = _shown(await _settled_article(request, article_id))
        parent = None if parent_id is None else await _comment_ref(request, parent_id)
        # A comment above it in the thread, deleted, takes the parent with it.
        if (
            parent is not None
            and parent.root_id is not None
            and await _decide_after_own_writes(
                request, claims.user_id, *await comment_queries(request).ancestors(parent.id)
            )
        ):
            parent = await _comment_ref(request, parent.id)
        deps, who = container(request).commands, caller(request, claims.user_id)
        command = post_comment(article, parent, parent_id, body.content, deps, who)
        return await answering(command, respond)

    return await idempotent(request, claims.user_id, run)


async def remove(request: Request) -> Response:
    claims = await require_caller(request)
    comment_id = path_id(request, "comment_id", "comment")
    await _decide_after_own_writes(request, claims.user_id)
    comment = await _comment_ref(request, comment_id)
    if (
        comment is not None
        and claims.user_id not in (comment.author_id, comment.article_author_id)
        and await _published(request, comment.article_id) is None
    ):
        # Under a withdrawn or deleted article: a 403 would tell anyone else it is there.
        raise NotFound("no such comment")
    deps, who = container(request).commands, caller(request, claims.user_id)
    async with comments_turn(deps, comment.article_id) if comment else nullcontext():
        position = await delete_comment(comment, deps, who)
        # No reply to it lands once this is answered, however far the projectors lag.
        return await visibility_written(
            request, Response(status_code=204), position, claims.user_id, comment_id
        )


async def threads(request: Request) -> Response:
    article_id = path_id(request, "article_id", "article")
    q = parse_query(request, ThreadsQuery)
    stale = await _wait_as_reader(request)
    if await _published(request, article_id) is None:
        raise NotFound("no such article")
    cq = comment_queries(request)
    with paged():
        page = await cq.roots(article_id, q.limit, q.before)
    newest = await cq.newest_replies([str(r.id) for r in page.items])
    shown = [*page.items, *(x for r in page.items for x in newest.get(str(r.id), []))]
    authors = await authors_out(request, [str(x.author_id) for x in shown])
    out = [
        ThreadOut(
            **_comment(r, authors).model_dump(),
            reply_count=r.replies,
            replies=[_comment(x, authors) for x in newest.get(str(r.id), [])],
        )
        for r in page.items
    ]
    body = ThreadsPage(comments=out, next_before=page.next_cursor)
    return mark_stale(JSON(body.model_dump(mode="json")), stale)


async def replies(request: Request) -> Response:
    root_id = path_id(request, "root_id", "comment")
    q = parse_query(request, RepliesQuery)
    stale = await _wait_as_reader(request)
    cq = comment_queries(request)
    root = await _comment_ref(request, root_id)
    if root is None or root.root_id is not None:
        raise NotFound("no such top-level comment")
    if await _published(request, root.article_id) is None:
        raise NotFound("no such article")
    with paged():
        page = await cq.replies(root_id, q.limit, q.after)
    authors = await authors_out(request, [str(r.author_id) for r in page.items])
    out = [_comment(r, authors) for r in page.items]
    body = RepliesPage(replies=out, next_after=page.next_cursor)
    return mark_stale(JSON(body.model_dump(mode="json")), stale)


async def _wait_as_reader(request: Request) -> bool:
    claims = await optional_caller(request)
    return await wait_for_reads(request, SHOWN_READS, claims.user_id if claims else None)


def _comment(row: Any, authors: dict[str, AuthorOut]) -> CommentOut:
    """A comment as shown, with its author among ``authors`` (``authors_out``)."""
    return CommentOut(
        id=str(row.id),
        article_id=str(row.article_id),
        author=authors[str(row.author_id)],
        parent_id=None if row.parent_id is None else str(row.parent_id),
        root_id=None if row.root_id is None else str(row.root_id),
        content=row.content,
        created_at=row.created_at,
    )


ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/articles/{article_id}/comments",
        post,
        "Comment on a published article, or reply to one of its comments",
        "comments",
        body=CommentIn,
        response=CommentEnvelope,
        status=201,
        auth=True,
        errors=(400, 401, 404, 409, 413, 415, 422, 503),
        headers=IDEMPOTENT,
    ),
    Endpoint(
        "DELETE",
        "/v1/comments/{comment_id}",
        remove,
        "Delete a comment and its replies (its author, or the article's author)",
        "comments",
        status=204,
        auth=True,
        errors=(401, 403, 404, 409, 503),
    ),
    Endpoint(
        "GET",
        "/v1/articles/{article_id}/comments",
        threads,
        "Top-level comments newest first, each with its newest replies and reply count",
        "comments",
        response=ThreadsPage,
        errors=(400, 401, 404),
        params=ThreadsQuery,
    ),
    Endpoint(
        "GET",
        "/v1/comments/{root_id}/replies",
        replies,
        "The replies of a thread, oldest first",
        "comments",
        response=RepliesPage,
        errors=(400, 401, 404),
        params=RepliesQuery,
    ),
]
