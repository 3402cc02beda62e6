"""The author's side of articles over HTTP: drafts, edits, publishing, withdrawing and
deleting, and the author's own list (readers' side: ``articles``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.redis.counters import Counts
from bloghub.api.article_counts import COUNTS_READS, counts_of
from bloghub.api.article_queries import abstract
from bloghub.api.auth import caller_waited, require_caller
from bloghub.api.consistent import (
    mark_stale,
    through_cache,
    visibility_written,
    wait_for_reads,
    written,
)
from bloghub.api.http import JSON, Endpoint, container, parse_body, parse_query
from bloghub.api.idempotency import answering, idempotent
from bloghub.api.v1.article_schemas import (
    FIRST_PAGE,
    ArticleEdit,
    ArticleIn,
    DraftEnvelope,
    DraftOut,
    DraftPage,
    DraftRefEnvelope,
    DraftSummary,
    PageQuery,
)
from bloghub.api.v1.articles import (
    ARTICLES_READS,
    IDEMPOTENT,
    LIST_TTL_S,
    article_id_of,
    paged,
    queries,
)
from bloghub.api.v1.interactions import INTERACTIONS_READS, marks_of, shown
from bloghub.api.v1.interactions import queries as interaction_queries
from bloghub.api.v1.sessions import caller
from bloghub.commands.articles import (
    ArticleState,
    Changed,
    Draft,
    create_article,
    delete_article,
    edit_draft,
    publish_article,
    withdraw_article,
)
from bloghub.errors import CatchingUp, NotFound
from bloghub.readmodels import author_first_page_key, draft_key

DRAFT_TTL_S = 300
AUTHOR_ERRORS = (401, 403, 404, 409, 422, 503)  # no body: never 415


def draft_out(row: Any) -> DraftOut:
    return DraftOut(
        id=str(row.id),
        author_id=str(row.author_id),
        version=row.version,
        status=row.status,
        title=row.title,
        content=row.content,
        tags=list(row.tags),
        created_at=row.created_at,
        updated_at=row.updated_at,
        published_version=row.published_version,
        published_at=row.published_at,
    )


async def create(request: Request) -> Response:
    claims = await require_caller(request)
    body = await parse_body(request, ArticleIn)

    async def respond(done: Changed) -> Response:
        out = {"article": {"id": done.article_id, "version": done.version, "status": "draft"}}
        response = JSON(
            out, status_code=201, headers={"location": f"/v1/me/articles/{done.article_id}"}
        )
        return await written(request, response, done.position, claims.user_id)

    async def run() -> Response:
        draft = Draft(body.title, body.content, body.tags)
        commands, who = container(request).commands, caller(request, claims.user_id)
        return await answering(create_article(draft, commands, who), respond)

    return await idempotent(request, claims.user_id, run)


async def _state(request: Request, user_id: str, article_id: str) -> ArticleState | None:
    """The article as of the author's own last write. A command never decides on an older
    state: if the read model has not got there in time, the caller is asked to retry."""
    if await wait_for_reads(request, ARTICLES_READS, user_id):
        raise CatchingUp("your last change is still being applied; try again in a moment")
    row = await queries(request).draft(article_id)
    return None if row is None else _state_of(row)


def _state_of(row: Any) -> ArticleState:
    """The draft with what readers see of it, read together: a publish of the draft they
    already see records nothing, and an edit may be based on the version they see."""
    published = None
    if row.published_version is not None:
        published = Draft(
            row.published_title,
            row.published_content,
            list(row.published_tags or []),
            row.published_description,
        )
    draft = Draft(row.title, row.content, list(row.tags), row.description)
    return ArticleState(
        str(row.id),
        str(row.author_id),
        row.version,
        row.status,
        draft,
        row.slug,
        row.published_version,
        published,
    )


async def edit(request: Request) -> Response:
    claims = await require_caller(request)
    article_id = article_id_of(request)
    body = await parse_body(request, ArticleEdit)
    state = await _state(request, claims.user_id, article_id)
    # This API has no description: an edit keeps the one the article has, and the content
    # and tags too when it leaves them out.
    old = state.draft if state is not None else Draft("", "", [])
    content = old.content if body.content is None else body.content
    tags = old.tags if body.tags is None else body.tags
    done = await edit_draft(
        state,
        Draft(body.title, content, tags, old.description),
        body.version,
        container(request).commands,
        caller(request, claims.user_id),
    )
    return await _changed(request, claims.user_id, done.article_id, done.version, done.position)


async def publish(request: Request) -> Response:
    claims = await require_caller(request)
    article_id = article_id_of(request)

    async def respond(done: Changed) -> Response:
        return await _changed(
            request,
            claims.user_id,
            done.article_id,
            done.version,
            done.position,
            status="published",
        )

    async def run() -> Response:
        state = await _state(request, claims.user_id, article_id)
        commands, who = container(request).commands, caller(request, claims.user_id)
        return await answering(publish_article(state, commands, who), respond)

    return await idempotent(request, claims.user_id, run)


async def withdraw(request: Request) -> Response:
    claims = await require_caller(request)
    state = await _state(request, claims.user_id, article_id_of(request))
    done = await withdraw_article(
        state, container(request).commands, caller(request, claims.user_id)
    )
    return await _changed(
        request, claims.user_id, done.article_id, done.version, done.position, status="withdrawn"
    )


async def remove(request: Request) -> Response:
    claims = await require_caller(request)
    state = await _state(request, claims.user_id, article_id_of(request))
    done = await delete_article(state, container(request).commands, caller(request, claims.user_id))
    return await visibility_written(
        request, Response(status_code=204), done.position, claims.user_id, done.article_id
    )


async def _changed(
    request: Request,
    user_id: str,
    article_id: str,
    version: int,
    position: Any,
    status: str | None = None,
) -> Response:
    out: dict[str, Any] = {"id": article_id, "version": version}
    if status is not None:
        out["status"] = status
    if status == "withdrawn":
        return await visibility_written(
            request, JSON({"article": out}), position, user_id, article_id
        )
    # An edit or a publish: whoever likes it has read it since, so the read model had it.
    return await written(request, JSON({"article": out}), position, user_id)


# The author's own articles, with the counts of each.
OWN_READS = [*ARTICLES_READS, *INTERACTIONS_READS, *COUNTS_READS]


async def _with_interactions(
    request: Request, user_id: str, articles: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each of ``articles`` (the author's own, as answered) with its counts (the
    interactions' and the comments') and the author's marks, read now: they change far more
    often than the article, and the cached page holds none. A copy: a cached answer is not
    changed."""
    ids = [a["id"] for a in articles]
    tallies = await interaction_queries(request).tallies(ids)
    mine = await marks_of(request, user_id, ids)
    comments = await counts_of(request, ids)
    return [
        {
            **a,
            **shown(tallies[a["id"]].counts if a["id"] in tallies else Counts(), mine, a["id"]),
            "comment_cnt": comments.get(a["id"], 0),
        }
        for a in articles
    ]


async def my_articles(request: Request) -> Response:
    claims, stale = await caller_waited(request, OWN_READS, account=False)
    paging = parse_query(request, PageQuery)
    limit, cursor = paging.limit, paging.cursor

    async def fill() -> dict[str, Any]:
        with paged():
            page = await queries(request).by_author(claims.user_id, limit, cursor)
        items = [
            DraftSummary(
                id=str(r.id),
                version=r.version,
                status=r.status,
                title=r.title,
                abstract=abstract(r.content),
                tags=list(r.tags),
                created_at=r.created_at,
                updated_at=r.updated_at,
                published_at=r.published_at,
            )
            for r in page.items
        ]
        return DraftPage(articles=items, next_cursor=page.next_cursor).model_dump(mode="json")

    if cursor is None and limit == FIRST_PAGE:
        key = author_first_page_key(container(request).cache, claims.user_id)
        body = await through_cache(request, key, LIST_TTL_S, fill)
    else:
        body = await fill()
    articles = await _with_interactions(request, claims.user_id, body["articles"])
    return mark_stale(JSON({**body, "articles": articles}), stale)


async def my_article(request: Request) -> Response:
    article_id = article_id_of(request)
    claims, stale = await caller_waited(request, OWN_READS, account=False)

    async def fill() -> dict[str, Any] | None:
        row = await queries(request).draft(article_id)
        return None if row is None else draft_out(row).model_dump(mode="json")

    key = draft_key(container(request).cache, article_id)
    found: dict[str, Any] | None = await through_cache(request, key, DRAFT_TTL_S, fill)
    if found is None or found["author_id"] != claims.user_id:
        raise NotFound("no such article among yours")
    (article,) = await _with_interactions(request, claims.user_id, [found])
    return mark_stale(JSON({"article": article}), stale)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/articles",
        create,
        "Start a draft",
        "articles",
        body=ArticleIn,
        response=DraftRefEnvelope,
        status=201,
        auth=True,
        errors=(400, 401, 409, 413, 415, 422, 503),
        headers={**IDEMPOTENT, "Location": "The new draft: /v1/me/articles/{id}"},
    ),
    Endpoint(
        "PUT",
        "/v1/articles/{article_id}",
        edit,
        "Edit the draft (send the version it was based on to guard against overwrites)",
        "articles",
        body=ArticleEdit,
        response=DraftRefEnvelope,
        auth=True,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
    ),
    Endpoint(
        "POST",
        "/v1/articles/{article_id}/publish",
        publish,
        "Publish the current draft",
        "articles",
        response=DraftRefEnvelope,
        auth=True,
        errors=AUTHOR_ERRORS,
        headers=IDEMPOTENT,
    ),
    Endpoint(
        "POST",
        "/v1/articles/{article_id}/withdraw",
        withdraw,
        "Hide the published version from readers",
        "articles",
        response=DraftRefEnvelope,
        auth=True,
        errors=AUTHOR_ERRORS,
    ),
    Endpoint(
        "DELETE",
        "/v1/articles/{article_id}",
        remove,
        "Delete the article",
        "articles",
        status=204,
        auth=True,
        errors=(401, 403, 404, 409),
    ),
    Endpoint(
        "GET",
        "/v1/me/articles",
        my_articles,
        "The caller's articles, newest first",
        "articles",
        response=DraftPage,
        auth=True,
        errors=(401, 404),
        params=PageQuery,
    ),
    Endpoint(
        "GET",
        "/v1/me/articles/{article_id}",
        my_article,
        "One of the caller's drafts",
        "articles",
        response=DraftEnvelope,
        auth=True,
        errors=(401, 404),
    ),
]
