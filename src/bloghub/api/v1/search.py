"""Search over HTTP: published articles and users, in Chinese and English.

Reads wait like any other for the caller's own writes (read-your-writes); a caller who
had a write to wait for also has the index refreshed before the search, so the article
they just published is found at once, while everyone else reads at full speed.
OpenSearch down: 503 with Retry-After (writes go on: the log has them, and the projector
catches up when OpenSearch is back). An article hit's like count is the interactions read
model's, as on the article itself, read for the whole page in one query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.opensearch import search_index
from bloghub.adapters.redis.counters import Tally
from bloghub.adapters.search_indexes import ARTICLES, USERS, index_name
from bloghub.api.auth import USERS_READS, wait_as_reader
from bloghub.api.consistent import Reads, mark_stale, pinned
from bloghub.api.http import JSON, Endpoint, container, parse_query
from bloghub.api.search_queries import (
    articles_request,
    decode_cursor,
    encode_cursor,
    highlights,
    users_request,
)
from bloghub.api.v1.article_schemas import AuthorOut
from bloghub.api.v1.interactions import INTERACTIONS_READS, queries
from bloghub.api.v1.search_schemas import (
    ArticleHit,
    ArticleResults,
    ArticleSearchQuery,
    Highlights,
    UserHit,
    UserResults,
    UserSearchQuery,
    author_filter,
)
from bloghub.api.v1.users import public_user
from bloghub.errors import Transient, Unavailable
from bloghub.events.topics import Family

log = structlog.get_logger(__name__)

ARTICLE_SEARCH_READS: Reads = [
    (ARTICLES, (Family.ARTICLES,)),
    *USERS_READS,
    *INTERACTIONS_READS,
]
USER_SEARCH_READS: Reads = [(USERS, (Family.USERS,))]
RETRY_AFTER_S = 5


class SearchUnavailable(Unavailable):
    code = "search_unavailable"
    retry_after_s = RETRY_AFTER_S


async def _search(
    request: Request, projector: str, body: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Search the generation of ``projector`` this request reads (the one it waited on)."""
    c = container(request)
    index = index_name(c.settings.prefix, projector, await pinned(request).generation(projector))
    try:
        return await search_index(
            c.search, index, body, refresh=getattr(request.state, "caught_up", False)
        )
    except (Unavailable, Transient) as exc:
        log.warning("search.unavailable", index=index, error=repr(exc))
        raise SearchUnavailable("search is unavailable; try again shortly") from exc


async def _author(request: Request, author_id: str) -> AuthorOut:
    found = await public_user(request, author_id)
    if found is None or found.get("deleted"):
        return AuthorOut(id=author_id, deleted=found is not None)
    return AuthorOut(id=author_id, nickname=found.get("nickname"))


async def _article_hit(
    request: Request, hit: Mapping[str, Any], tallies: Mapping[str, Tally]
) -> ArticleHit:
    doc = hit["_source"]
    tally = tallies.get(doc["id"])
    return ArticleHit(
        id=doc["id"],
        author=await _author(request, doc["author_id"]),
        title=doc["title"],
        tags=doc.get("tags", []),
        published_at=doc["published_at"],
        like_count=tally.counts.like_cnt if tally is not None else 0,
        highlights=Highlights(**highlights(hit)),
    )


async def search_articles(request: Request) -> Response:
    params = parse_query(request, ArticleSearchQuery)
    after = decode_cursor(params.cursor) if params.cursor is not None else None
    stale = await wait_as_reader(request, ARTICLE_SEARCH_READS)
    body = articles_request(
        params.q,
        tag=params.tag,
        author=author_filter(params.author),
        limit=params.limit,
        after=after,
    )
    found = await _search(request, ARTICLES, body)
    hits = list(found["hits"]["hits"]) if found else []
    page = hits[: params.limit]
    more = len(hits) > params.limit
    tallies = await queries(request).tallies([hit["_source"]["id"] for hit in page])
    out = ArticleResults(
        total=found["hits"]["total"]["value"] if found else 0,
        # The authors of a page are looked up side by side, not one round trip each.
        articles=list(await asyncio.gather(*(_article_hit(request, hit, tallies) for hit in page))),
        next_cursor=encode_cursor(page[-1]["sort"]) if more else None,
    )
    return mark_stale(JSON(out.model_dump(mode="json")), stale)


async def search_users(request: Request) -> Response:
    params = parse_query(request, UserSearchQuery)
    stale = await wait_as_reader(request, USER_SEARCH_READS)
    found = await _search(request, USERS, users_request(params.q, limit=params.limit))
    hits = list(found["hits"]["hits"]) if found else []
    out = UserResults(
        total=found["hits"]["total"]["value"] if found else 0,
        users=[
            UserHit(
                id=h["_source"]["id"],
                nickname=h["_source"].get("nickname"),
                about_me=h["_source"].get("about"),
            )
            for h in hits
        ],
    )
    return mark_stale(JSON(out.model_dump(mode="json")), stale)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/search/articles",
        search_articles,
        "Search published articles (Chinese and English), best and newest first",
        "search",
        response=ArticleResults,
        errors=(400, 401, 404, 422, 503),
        params=ArticleSearchQuery,
    ),
    Endpoint(
        "GET",
        "/v1/search/users",
        search_users,
        "Search users by nickname and about text",
        "search",
        response=UserResults,
        errors=(400, 401, 422, 503),
        params=UserSearchQuery,
    ),
]
