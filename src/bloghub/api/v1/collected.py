"""A collection's articles, listed as every listing shows a published article."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import caller_waited
from bloghub.api.consistent import mark_stale
from bloghub.api.http import JSON, Endpoint, parse_query
from bloghub.api.v1.article_schemas import PageQuery
from bloghub.api.v1.articles import READER_READS, summaries_of
from bloghub.api.v1.interaction_schemas import CollectedArticle, CollectedPage
from bloghub.api.v1.interactions import INTERACTIONS_READS, queries
from bloghub.api.v1.path_ids import path_id
from bloghub.errors import InvalidInput, NoPage, NotFound

# The entries are the interactions read model's; each is shown with what the articles,
# users and counts read models hold of it.
COLLECTED_READS = [*INTERACTIONS_READS, *READER_READS]


async def collection_articles(request: Request) -> Response:
    # The caller's own article among them shows the caller's account: waited for.
    claims, stale = await caller_waited(request, COLLECTED_READS)
    collection_id = path_id(request, "collection_id", "collection")
    paging = parse_query(request, PageQuery)
    q = queries(request)
    box = await q.box(collection_id)
    if box is None or box.owner_id != claims.user_id:
        raise NotFound("no such collection among yours")
    try:
        page = await q.entries(collection_id, paging.limit, paging.cursor)
    except InvalidInput as exc:
        # A cursor of the documented form that this API never handed out names no page.
        if "cursor" not in exc.fields:
            raise
        raise NoPage() from None
    # An entry whose article the articles read model no longer publishes (withdrawn a
    # moment ago) is left out; the cursor still moves past it.
    found = await summaries_of(request, claims.user_id, [str(r.article_id) for r in page.items])
    out = CollectedPage(
        articles=[
            CollectedArticle(**found[str(r.article_id)].model_dump(), added_at=r.added_at)
            for r in page.items
            if str(r.article_id) in found
        ],
        next_cursor=page.next_cursor,
    )
    return mark_stale(JSON(out.model_dump(mode="json")), stale)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/collections/{collection_id}/articles",
        collection_articles,
        "The articles of one of the caller's collections, newest first, as listings show them",
        "interactions",
        response=CollectedPage,
        auth=True,
        errors=(401, 404, 422),
        params=PageQuery,
    ),
]
