"""Articles over HTTP, the readers' side: published detail, listings and tags (the author's
side: ``drafts``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.redis.cache import Cache
from bloghub.adapters.redis.counters import Counts
from bloghub.api.article_counts import COUNTS_READS, counted
from bloghub.api.article_queries import ArticleQueries, abstract
from bloghub.api.auth import USERS_READS, require_caller, wait_as_reader
from bloghub.api.consistent import (
    found_or_settled,
    mark_stale,
    pinned,
    through_cache,
    wait_for_reads,
)
from bloghub.api.hot import hot_json
from bloghub.api.http import JSON, Endpoint, container, parse_query
from bloghub.api.interaction_queries import Mine
from bloghub.api.v1.article_schemas import (
    INTERACTIVE_FIELDS,
    AuthorOut,
    ListingQuery,
    PublishedEnvelope,
    PublishedOut,
    PublishedPage,
    PublishedSummary,
    TagCount,
    TagsOut,
)
from bloghub.api.v1.interactions import INTERACTIONS_READS, interactive, marks_of, shown, tally_of
from bloghub.api.v1.path_ids import path_id
from bloghub.api.v1.sessions import client_ip
from bloghub.api.v1.users import public_users
from bloghub.bootstrap import Container
from bloghub.client_address import client_key
from bloghub.commands.read_counting import anonymous_reader
from bloghub.errors import InvalidInput, NoPage, NotFound
from bloghub.events.topics import Family
from bloghub.readmodels import (
    PUBLISHED_TTL_S,
    published_key,
    published_view,
)

ARTICLES_READS = [("articles", (Family.ARTICLES,))]
# What readers see names each article's author: two read models, both waited for.
WITH_AUTHORS_READS = [*ARTICLES_READS, *USERS_READS]
# What readers see of a published article: with its author and its counts.
SHOWN_READS = [*WITH_AUTHORS_READS, *COUNTS_READS]
# Readers also see the interactions' counts and their own likes: the liker sees the like
# at once.
READER_READS = [*SHOWN_READS, *INTERACTIONS_READS]
LIST_TTL_S = 300
IDEMPOTENT = {"Idempotency-Key": "A retry with the same key gets the first answer"}


def queries(request: Request) -> ArticleQueries:
    return ArticleQueries(container(request).read_engine, pinned(request))


def article_id_of(request: Request) -> str:
    return path_id(request, "article_id", "article")


@contextmanager
def paged() -> Iterator[None]:
    """A cursor of the documented form that this API never handed out names no page: that
    is a 404 (start again without one), not a request of the wrong form."""
    try:
        yield
    except InvalidInput as exc:
        # Threads page with ``before`` and replies with ``after``: cursors by other names.
        if not {"cursor", "before", "after"} & set(exc.fields):
            raise
        raise NoPage() from None


async def author_out(request: Request, author_id: str, *, settle: bool = True) -> AuthorOut:
    """An author as readers see them (``authors_out``)."""
    return (await authors_out(request, [author_id], settle=settle))[author_id]


async def authors_out(
    request: Request, author_ids: Iterable[str], *, settle: bool = True
) -> dict[str, AuthorOut]:
    """Authors as readers see them, looked up together (a page's, in one round trip). One
    the users read model does not hold yet (an account made a moment before its first
    article or comment) is waited for, not shown as an author without a name
    (``found_or_settled``: once for all such authors of a page); a write's answer, which
    shows the caller, the sign-in check waited for, does not wait (``settle=False``)."""
    unique = list(dict.fromkeys(author_ids))
    found = await settled_users(request, unique) if settle else await public_users(request, unique)
    return {user_id: _author(user_id, found.get(user_id)) for user_id in unique}


async def settled_users(request: Request, user_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """``public_users`` of ``user_ids`` (no two alike), one the users read model does not
    hold yet waited for (once for all of them: ``found_or_settled``); one still missing
    after that is None, never taken for an erased account (whose row says so)."""
    found = await public_users(request, user_ids)
    missing = [user_id for user_id in user_ids if found.get(user_id) is None]
    if missing:
        again = await found_or_settled(
            request,
            USERS_READS,
            Family.USERS,
            lambda: public_users(request, missing),
            missing[0] if len(missing) == 1 else None,
            enough=lambda got: all(value is not None for value in got.values()),
        )
        found.update(again or {})
    return found


def _author(author_id: str, found: dict[str, Any] | None) -> AuthorOut:
    if found is None or found.get("deleted"):
        return AuthorOut(id=author_id, deleted=found is not None)
    return AuthorOut(id=author_id, nickname=found.get("nickname"))


# --- the readers' side ------------------------------------------------------------------


async def published_detail(request: Request, article_id: str) -> dict[str, Any] | None:
    """The published article through the cache the articles projector owns and pre-warms."""
    c: Cache = container(request).cache

    async def fill() -> dict[str, Any] | None:
        return published_view(await queries(request).published(article_id))

    found: dict[str, Any] | None = await through_cache(
        request, published_key(c, article_id), PUBLISHED_TTL_S, fill
    )
    return found


async def read(request: Request) -> Response:
    article_id = article_id_of(request)
    claims = await require_caller(request) if request.headers.get("authorization") else None
    user_id = claims.user_id if claims else None
    stale = await wait_for_reads(request, READER_READS, user_id)

    async def build() -> dict[str, Any] | None:
        view = await published_detail(request, article_id)
        if view is None:
            return None
        out = PublishedOut(
            author=await author_out(request, view["author_id"]),
            **{k: v for k, v in view.items() if k != "author_id"},
        )
        (out,) = await counted(request, [out], cached=True)
        # The interactions' counts and the caller's marks change far more often than the
        # article: they are added to every answer, never kept with the body.
        envelope = PublishedEnvelope(article=out)
        return envelope.model_dump(mode="json", exclude={"article": INTERACTIVE_FIELDS})

    body = await hot_json(request, f"article:{article_id}", build)
    if body is None:
        raise NotFound("no such article")
    tally = await tally_of(request, article_id)
    if request.method != "HEAD":  # a HEAD serves no article
        # Counted even before the interactions projector has seen the article published
        # (it keeps the count until it does): the author is then the served body's.
        author_id = tally.author_id if tally is not None else _author_of(body)
        count_read(container(request), article_id, author_id, user_id, client_ip(request))
    mine = await marks_of(request, user_id, [article_id])
    body = with_counts(body, tally.counts if tally else Counts(), mine, article_id)
    return mark_stale(Response(body, media_type="application/json"), stale)


def _author_of(body: bytes) -> str:
    """The author's id in a detail body ({"article": {"author": {"id": ...}}})."""
    author_id: str = orjson.loads(body)["article"]["author"]["id"]
    return author_id


def with_counts(body: bytes, counts: Counts, mine: Mine | None, article_id: str) -> bytes:
    """The cached detail body with the counts and the caller's marks. The body is
    {"article": {...}}: the fields go in before its last two braces, so the (possibly
    large) cached body is never decoded again."""
    return body[:-2] + b"," + orjson.dumps(shown(counts, mine, article_id))[1:-1] + b"}}"


def count_read(
    c: Container, article_id: str, author_id: str, user_id: str | None, host: str
) -> None:
    """Note the read for counting: an enqueue, never I/O on the request path. An anonymous
    reader is their address's client key (an IPv6 client's /64, which one host can rotate
    through as it likes): with the user agent in it too, or each IPv6 address apart, one
    client counted as that many readers."""
    if user_id is None:
        secret = c.settings.reader_hash_secret.get_secret_value().encode()
        reader = anonymous_reader(secret, client_key(host))
    else:
        reader = user_id
    c.reads.note(article_id, author_id, reader)


async def listing(request: Request) -> Response:
    q = parse_query(request, ListingQuery)
    claims = await require_caller(request) if request.headers.get("authorization") else None
    user_id = claims.user_id if claims else None
    stale = await wait_for_reads(request, READER_READS, user_id)
    with paged():
        page = await queries(request).published_list(
            author=str(q.author) if q.author else None, tag=q.tag, limit=q.limit, cursor=q.cursor
        )
    authors = await authors_out(request, [str(r.author_id) for r in page.items])
    shown = await counted(request, [published_summary(r, authors) for r in page.items])
    items = await interactive(request, user_id, shown)
    body = PublishedPage(articles=items, next_cursor=page.next_cursor)
    return mark_stale(JSON(body.model_dump(mode="json")), stale)


async def summaries_of(
    request: Request, user_id: str | None, ids: list[str]
) -> dict[str, PublishedSummary]:
    """The published articles among ``ids`` as listings show them: with their authors,
    counts and the caller's marks, by id. One a listing of another read model still holds
    but the articles read model no longer publishes is left out."""
    rows = await queries(request).published_many(ids)
    authors = await authors_out(request, [str(r.author_id) for r in rows.values()])
    shown = [published_summary(rows[i], authors) for i in ids if i in rows]
    listed = await interactive(request, user_id, await counted(request, shown))
    return {a.id: a for a in listed}


def published_summary(r: Any, authors: dict[str, AuthorOut]) -> PublishedSummary:
    """A listed published article (``PUBLISHED_COLUMNS``), before its counts, with its
    author among ``authors`` (``authors_out``)."""
    return PublishedSummary(
        id=str(r.id),
        author=authors[str(r.author_id)],
        title=r.published_title,
        abstract=abstract(r.published_content),
        tags=list(r.published_tags or []),
        published_at=r.published_at,
    )


async def tags(request: Request) -> Response:
    stale = await wait_as_reader(request, ARTICLES_READS, account=False)
    counted = await queries(request).tags()
    body = TagsOut(tags=[TagCount(tag=t, articles=n) for t, n in counted]).model_dump()
    return mark_stale(JSON(body), stale)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/v1/articles",
        listing,
        "Published articles, newest first",
        "articles",
        response=PublishedPage,
        errors=(400, 401, 404),
        params=ListingQuery,
    ),
    Endpoint(
        "GET",
        "/v1/articles/{article_id}",
        read,
        "A published article",
        "articles",
        response=PublishedEnvelope,
        errors=(400, 401, 404),
    ),
    Endpoint(
        "GET",
        "/v1/tags",
        tags,
        "The 100 most used tags of published articles, with their counts",
        "articles",
        response=TagsOut,
        errors=(400, 401),
    ),
]
