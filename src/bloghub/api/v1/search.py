"""Search over HTTP: published articles and users, in Chinese and English.

Reads wait like any other for the caller's own writes (read-your-writes); a caller who
waited for a position also finds what the index holds up to it: the index is refreshed
first unless a refresh of this process since the projector passed it has done that
(adapters/opensearch.py ``Views``), so the article they just published is found at once,
and a refresh is paid once per position, not per reader. An article search's pages read
one point-in-time view of the index, named by the (sealed) cursor with the time the
recency boost is measured from, so no article is skipped or repeated while others
publish; a cursor whose view has expired is 404 ``cursor_expired`` (search again).
OpenSearch down: 503 with Retry-After (writes go on: the log has them, and the projector
catches up when OpenSearch is back). An article hit's counts are the interactions read
model's, as on the article itself, read for the whole page in one query, with the
signed-in caller's ``liked`` and ``collected``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.opensearch import ViewGone, current_docs, refresh_index, search_index
from bloghub.adapters.redis.counters import Counts, Tally
from bloghub.adapters.search_indexes import ARTICLES, USERS, index_name
from bloghub.adapters.search_views import VIEW_KEEP_ALIVE_S
from bloghub.api.article_counts import COUNTS_READS, counts_of
from bloghub.api.auth import USERS_READS, reader_waited, wait_as_reader
from bloghub.api.consistent import Reads, mark_stale, pinned, waited_for
from bloghub.api.http import JSON, Endpoint, container, parse_query
from bloghub.api.interaction_queries import Mine
from bloghub.api.search_queries import (
    Cursor,
    CursorSeal,
    articles_request,
    highlights,
    now_ms,
    search_digest,
    users_request,
)
from bloghub.api.v1.article_schemas import AuthorOut
from bloghub.api.v1.articles import authors_out
from bloghub.api.v1.interactions import INTERACTIONS_READS, marks_of, queries, shown
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
from bloghub.errors import NotFound, Transient, Unavailable
from bloghub.events.position import Position
from bloghub.events.topics import Family

log = structlog.get_logger(__name__)

# The index each search reads, by its projector and the topic whose positions it shows.
ARTICLES_INDEX_READS: Reads = [(ARTICLES, (Family.ARTICLES,))]
USERS_INDEX_READS: Reads = [(USERS, (Family.USERS,))]
ARTICLE_SEARCH_READS: Reads = [
    *ARTICLES_INDEX_READS,
    *USERS_READS,
    *INTERACTIONS_READS,
    *COUNTS_READS,
]
USER_SEARCH_READS: Reads = USERS_INDEX_READS
RETRY_AFTER_S = 5
# The longest cursor a page query takes (``PageQuery.cursor``).
CURSOR_CHARS = 512
# A later page missing articles withdrawn since its view was taken reads on from the view
# this many more times at most to fill itself, each read REFILL_GROWTH times the one
# before: a page of 20 looks through up to 1,785 of the view's articles.
REFILLS = 3
REFILL_GROWTH = 4

Found = Mapping[str, Any]


class SearchUnavailable(Unavailable):
    code = "search_unavailable"
    retry_after_s = RETRY_AFTER_S


class CursorExpired(NotFound):
    code = "cursor_expired"


EXPIRED = "this search's pages are kept for 2 minutes after each page; search again"


async def _index(request: Request, projector: str) -> str:
    """The index of the generation of ``projector`` this request reads (the one it waited on)."""
    c = container(request)
    return index_name(c.settings.prefix, projector, await pinned(request).generation(projector))


async def _wanted(request: Request, reads: Reads, stale: bool) -> Position:
    """What the index must show: the position this read waited for in the index's topic;
    nothing if the wait ran out before the index's projector passed it (the answer says
    it may be stale, and a refresh could not bring what is not indexed yet)."""
    wanted = waited_for(request, reads)
    c = container(request)
    if wanted and stale and not await c.progress.reached(reads, wanted, pinned(request)):
        return Position({})
    return wanted


@contextlib.contextmanager
def _answered(index: str) -> Iterator[None]:
    try:
        yield
    except (Unavailable, Transient) as exc:
        log.warning("search.unavailable", index=index, error=repr(exc))
        raise SearchUnavailable("search is unavailable; try again shortly") from exc


def _seal(request: Request) -> CursorSeal:
    return CursorSeal(container(request).settings.position_secret.get_secret_value())


async def _article_page(
    request: Request, body: Found, cursor: Cursor | None, wanted: Position, limit: int
) -> tuple[Found | None, str | None]:
    """A page of hits and the view its next page reads. A first page reads a fresh view
    that shows ``wanted``; a later one the view of its first page."""
    search, views = container(request).search, container(request).search_views
    index = await _index(request, ARTICLES)
    with _answered(index):
        if cursor is None:

            def paged(found: Found) -> bool:
                return len(found["hits"]["hits"]) > limit

            return await views.first_page(index, body, wanted, paged=paged)
        if cursor.view is None:  # the cluster held no views when the first page was read
            return await search_index(search, index, body), None
        try:
            found = await views.later_page(cursor.view, body)
        except ViewGone as exc:
            raise CursorExpired(EXPIRED) from exc
        return found, str(found.get("pit_id") or cursor.view)


def _next_cursor(
    request: Request, after: list[Any], origin_ms: int, view: str | None, search: str
) -> str:
    seal = _seal(request)
    issued = now_ms()
    cursor = seal.seal(Cursor(after, origin_ms, view, search, issued))
    if len(cursor) > CURSOR_CHARS:  # a view id of many shards: page the index itself
        log.warning("search.cursor_too_long", chars=len(cursor))
        cursor = seal.seal(Cursor(after, origin_ms, None, search, issued))
    return cursor


async def _as_now(request: Request, body: Found, page: list[Found]) -> list[Found]:
    """A later page's hits as the index holds them now. Its view keeps the index as the
    first page found it, so no article is skipped or repeated, but an article withdrawn or
    deleted since is no longer shown (its text stayed readable in the view however long
    its pages went on), nor one edited since so that the search's words or filters no
    longer match it; one edited and still matching shows its title and tags as published
    now, without fragments of the text it no longer has."""
    if not page:
        return page
    c = container(request)
    index = await _index(request, ARTICLES)
    with _answered(index):
        now = await current_docs(
            c.search, index, [hit["_source"]["id"] for hit in page], ("state", "v", "title", "tags")
        )
    live = {i: doc for i, doc in now.items() if doc.get("state") == "published"}
    edited = [
        hit["_source"]["id"]
        for hit in page
        if hit["_source"]["id"] in live
        and live[hit["_source"]["id"]].get("v") != hit["_source"].get("v")
    ]
    matching = await _matching_now(request, body, edited) if edited else set()
    shown: list[Found] = []
    for hit in page:
        article = hit["_source"]["id"]
        doc = live.get(article)
        if doc is None or (article in edited and article not in matching):
            continue
        if article in edited:
            source = {**hit["_source"], "title": doc["title"], "tags": doc.get("tags", [])}
            hit = {**hit, "_source": source, "highlight": {}}
        shown.append(hit)
    return shown


async def _matching_now(request: Request, body: Found, ids: list[str]) -> set[str]:
    """Which of ``ids`` (articles edited since a later page's view was taken) the search's
    words and filters match as the index holds them now. Rare, so the index is refreshed
    first: the edits just read by id are searchable then."""
    c = container(request)
    index = await _index(request, ARTICLES)
    check = {
        "query": {"bool": {"must": [body["query"]], "filter": [{"ids": {"values": ids}}]}},
        "size": len(ids),
        "_source": False,
    }
    with _answered(index):
        if not await refresh_index(c.search, index):
            return set()
        found = await search_index(c.search, index, check)
    return {hit["_id"] for hit in found["hits"]["hits"]} if found else set()


async def _later_page(
    request: Request, body: Found, cursor: Cursor, limit: int
) -> tuple[list[Found], list[Any] | None, str | None, int]:
    """A later page read through its first page's view, as the index holds its articles
    now (``_as_now``); where its next page resumes (None: there is none); the view; how
    many articles the view holds for the search. An
    article withdrawn or deleted since the view was taken is left out and the page read on
    from the view in its stead, up to ``REFILLS`` more reads: a page comes short only at
    the end, and a next page is offered only when an article to show follows (or, past
    those reads, when the view has more to look at)."""
    shown: list[Found] = []
    view, after, held = cursor.view, cursor.after, 0
    for read in range(1 + REFILLS):
        # One past the page tells whether another follows; each further read takes
        # REFILL_GROWTH times more (a run of withdrawn articles longer than a page is
        # passed in a few reads, not left as an empty page).
        size = (limit + 1 - len(shown)) * REFILL_GROWTH**read
        on = replace(cursor, view=view)
        found, view = await _article_page(
            request, {**body, "size": size, "search_after": after}, on, Position(), size
        )
        hits = list(found["hits"]["hits"]) if found else []
        held = int(found["hits"]["total"]["value"]) if found else 0
        shown += await _as_now(request, body, hits)
        if len(shown) > limit:
            return shown[:limit], list(shown[limit - 1]["sort"]), view, held
        if len(hits) < size:
            return shown, None, view, held  # the view holds no more
        after = list(hits[-1]["sort"])
    return shown, after, view, held


async def _total_now(request: Request, body: Found, origin_ms: int, wanted: Position) -> int:
    """How many articles published by ``origin_ms`` (a first page's time: its view holds
    none published since) the search's words and filters match in the index now, with
    what the caller waited for (``wanted``: their own last write, say) searchable."""
    c = container(request)
    index = await _index(request, ARTICLES)
    by_then = {"range": {"published_at": {"lte": origin_ms}}}
    query = {"bool": {"must": [body["query"]], "filter": [by_then]}}
    count = {"query": query, "size": 0, "track_total_hits": True}
    with _answered(index):
        if not await c.search_views.refreshed(index, wanted):
            return 0
        found = await search_index(c.search, index, count)
    return int(found["hits"]["total"]["value"]) if found else 0


@dataclass(frozen=True, slots=True)
class HitCounts:
    """What a page of hits shows besides the index's text: the interactions' counts, the
    caller's marks and the comment counts."""

    tallies: Mapping[str, Tally]
    mine: Mine | None
    comments: Mapping[str, int]


def _article_hit(
    hit: Mapping[str, Any], counts: HitCounts, authors: Mapping[str, AuthorOut]
) -> ArticleHit:
    doc = hit["_source"]
    tally = counts.tallies.get(doc["id"])
    mine = counts.mine
    return ArticleHit(
        id=doc["id"],
        author=authors[doc["author_id"]],
        title=doc["title"],
        tags=doc.get("tags", []),
        published_at=doc["published_at"],
        comment_cnt=counts.comments.get(doc["id"], 0),
        **shown(tally.counts if tally is not None else Counts(), mine, doc["id"]),
        highlights=Highlights(**highlights(hit)),
    )


async def search_articles(request: Request) -> Response:
    params = parse_query(request, ArticleSearchQuery)
    author = author_filter(params.author)
    search = search_digest(params.q, params.tag, author)
    cursor = _seal(request).open(params.cursor) if params.cursor is not None else None
    if cursor is not None and now_ms() - cursor.issued_ms > VIEW_KEEP_ALIVE_S * 1000:
        # Its view may linger until the cluster's sweep; the cursor's time is its own.
        raise CursorExpired(EXPIRED)
    if cursor is not None and cursor.search != search:
        # Its view keeps the index as that search's first page found it: other words run
        # against it would find text removed since.
        raise NotFound("that cursor pages another search; start again without one")
    claims, stale = await reader_waited(request, ARTICLE_SEARCH_READS)
    origin_ms = cursor.origin_ms if cursor is not None else now_ms()
    body = articles_request(
        params.q,
        tag=params.tag,
        author=author,
        limit=params.limit,
        after=cursor.after if cursor is not None else None,
        origin_ms=origin_ms,
    )
    if cursor is not None and cursor.view is not None:
        # A later page reads its first page's view, as it stands now (``_later_page``). Its
        # total counts what its pages list: what matches now (what was withdrawn since is
        # not listed) of what was published by the first page (nor is what was published
        # since), never more than the view holds.
        shown, resume, view, held = await _later_page(request, body, cursor, params.limit)
        wanted = await _wanted(request, ARTICLES_INDEX_READS, stale)
        total = min(held, await _total_now(request, body, origin_ms, wanted))
    else:
        first = await _wanted(request, ARTICLES_INDEX_READS, stale) if cursor is None else None
        found, view = await _article_page(request, body, cursor, first or Position(), params.limit)
        hits = list(found["hits"]["hits"]) if found else []
        shown = hits[: params.limit]
        # From the page's last hit: the next page follows on from it.
        resume = list(shown[-1]["sort"]) if len(hits) > params.limit else None
        total = found["hits"]["total"]["value"] if found else 0
    ids = [hit["_source"]["id"] for hit in shown]
    counts = HitCounts(
        await queries(request).tallies(ids),
        await marks_of(request, claims.user_id if claims else None, ids),
        await counts_of(request, ids),
    )
    # The authors of a page are looked up together: one round trip, not one each.
    authors = await authors_out(request, [hit["_source"]["author_id"] for hit in shown])
    out = ArticleResults(
        total=total,
        articles=[_article_hit(hit, counts, authors) for hit in shown],
        next_cursor=None
        if resume is None
        else _next_cursor(request, resume, origin_ms, view, search),
    )
    return mark_stale(JSON(out.model_dump(mode="json")), stale)


async def search_users(request: Request) -> Response:
    params = parse_query(request, UserSearchQuery)
    stale = await wait_as_reader(request, USER_SEARCH_READS)
    wanted = await _wanted(request, USERS_INDEX_READS, stale)
    index = await _index(request, USERS)
    with _answered(index):
        found = None
        if await container(request).search_views.refreshed(index, wanted):
            found = await search_index(
                container(request).search, index, users_request(params.q, limit=params.limit)
            )
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
