"""Likes and collections over HTTP, and the counts and the caller's own marks that article
detail and listings show."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.redis.counters import Counts, Tally
from bloghub.adapters.redis.local_tier import Build
from bloghub.api.auth import caller_waited, require_caller
from bloghub.api.consistent import (
    Reads,
    forget_own_write,
    found_or_settled,
    mark_stale,
    pinned,
    wait_for_reads,
    written,
)
from bloghub.api.http import JSON, Endpoint, container, parse_body
from bloghub.api.idempotency import answering, idempotent
from bloghub.api.interaction_queries import MAX_COLLECTIONS, InteractionQueries, Mine
from bloghub.api.rate_limit import SessionRead
from bloghub.api.v1.article_schemas import PublishedOut, PublishedSummary
from bloghub.api.v1.interaction_schemas import (
    CollectionEnvelope,
    CollectionIn,
    CollectionOut,
    CollectionRef,
    CollectionsOut,
    EntryEnvelope,
    LikeEnvelope,
)
from bloghub.api.v1.path_ids import path_id
from bloghub.api.v1.sessions import caller
from bloghub.auth.tokens import Claims
from bloghub.bootstrap import Container
from bloghub.commands.interactions import (
    Made,
    Target,
    collect,
    collecting_turn,
    create_collection,
    like,
)
from bloghub.errors import CatchingUp, InvalidInput, Unavailable
from bloghub.events.position import Position
from bloghub.events.topics import Family

# Publish, withdraw and delete reach this read model from the articles family.
INTERACTIONS_READS = [("interactions", (Family.ARTICLES, Family.INTERACTIONS))]
IDEMPOTENT = {"Idempotency-Key": "A retry with the same key gets the first answer"}


def queries(request: Request) -> InteractionQueries:
    c = container(request)
    return InteractionQueries(c.read_engine, pinned(request), c.lookups)


# What a like decides on: whether the article is shown, which only the articles family
# changes. Waiting for the caller's own likes too would make each like of a user wait for
# the projector to apply the one before it.
LIKE_DECIDES = [("interactions", (Family.ARTICLES,))]


async def _caught_up(
    request: Request,
    user_id: str,
    reads: Reads = INTERACTIONS_READS,
    article_id: str | None = None,
) -> None:
    """A command decides on the read model as of the caller's own last write, or not at all;
    one that adds to an article (``article_id``), also as of the article's last withdraw or
    delete, whoever made it: no like lands on an article whose withdraw was answered,
    however far the projector lags."""
    also = None
    if article_id is not None:
        also = _visibility_read(request, article_id)
        if also is None:
            also = await container(request).own_writes.visibility_changed(article_id)
    if await wait_for_reads(request, reads, user_id, also):
        raise CatchingUp("a change to this is still being applied; try again in a moment")


def _visibility_read(request: Request, article_id: str) -> Position | None:
    """The article's last withdraw or delete as the rate limiter read it in its round trip
    (api/rate_limit.py: ``added_to``); None when it did not."""
    read: SessionRead | None = getattr(request.state, "session_read", None)
    if read is None or read.article is None or read.article[0] != article_id:
        return None
    return container(request).own_writes.parse(read.article[1])


async def target_of(request: Request, article_id: str, *, to_show: bool = True) -> Target | None:
    """The article a like or a collect is of; one another author's publish made a moment
    before (a first one, or one after a withdraw) is waited for, not said not to exist or,
    when what is asked needs it shown (``to_show``), not to be published
    (``found_or_settled``). Taking an article out of a collection needs it known only."""
    return await found_or_settled(
        request,
        LIKE_DECIDES,
        Family.ARTICLES,
        lambda: queries(request).target(article_id),
        article_id,
        enough=(lambda found: found.visible) if to_show else None,
    )


# --- what article reads show ----------------------------------------------------------


async def tally_of(request: Request, article_id: str) -> Tally | None:
    """An article's counts: from this process's tier or the Redis hash the projector keeps,
    unless this read had to catch up with a position (then from the read model it waited
    for); a missing hash is filled from the read model. With Redis out of reach, from the
    read model, kept nowhere (no change could reach a copy kept without Redis). None while
    the projector has not seen it published."""
    c = container(request)
    build: Build | None = None
    if not getattr(request.state, "caught_up", False):
        found = held_tally(c, article_id)
        if found is not None:
            return found
        # Begun before anything is read: a change announced while the reads below are on
        # their way keeps what they found out of the tier.
        build = c.hot.begin()
        try:
            versioned = await c.counters.get_versioned(article_id)
        except Unavailable:
            versioned, build = None, None
        if versioned is not None and build is not None:
            _keep_tally(c, article_id, *versioned, build)
            return versioned[0]
    tally = (await queries(request).tallies([article_id])).get(article_id)
    if tally is not None and build is not None:
        try:
            await c.counters.fill(article_id, tally)
        except Unavailable:
            return tally
        # A fill is version 0: any write of the projector since drops it (or keeps it out).
        _keep_tally(c, article_id, tally, 0, build)
    return tally


def tally_name(article_id: str) -> str:
    return f"tally:{article_id}"


def held_tally(c: Container, article_id: str) -> Tally | None:
    """The counts this process's tier holds for the article, without a round trip. The
    projector announces each counter hash it writes (with its version) on the tier's
    channel, so a held copy is dropped as soon as it is older than the hash."""
    raw = c.hot.get(tally_name(article_id))
    return None if raw is None else held_tally_of(raw)


def held_tally_of(raw: bytes) -> Tally:
    read, liked, collected, author = orjson.loads(raw)
    return Tally(Counts(read, liked, collected), author)


def _keep_tally(c: Container, article_id: str, tally: Tally, version: int, build: Build) -> None:
    n = tally.counts
    raw = orjson.dumps([n.read_cnt, n.like_cnt, n.collect_cnt, tally.author_id])
    c.hot.put(tally_name(article_id), raw, {c.counters.key(article_id): version}, build)


async def marks_of(request: Request, user_id: str | None, article_ids: list[str]) -> Mine | None:
    return None if user_id is None else await queries(request).mine(user_id, article_ids)


def shown(counts: Counts, mine: Mine | None, article_id: str) -> dict[str, Any]:
    """The fields an article read adds: counts for everyone, ``liked`` and ``collected``
    for a signed-in caller (null for anyone else)."""
    return {
        **counts.as_dict(),
        "liked": None if mine is None else article_id in mine.liked,
        "collected": None if mine is None else article_id in mine.collected,
    }


Listed = TypeVar("Listed", PublishedSummary, PublishedOut)


async def interactive(request: Request, user_id: str | None, listed: list[Listed]) -> list[Listed]:
    """``listed`` with each article's counts and the caller's ``liked`` and ``collected``."""
    ids = [a.id for a in listed]
    tallies = await queries(request).tallies(ids)
    mine = await marks_of(request, user_id, ids)
    return [
        a.model_copy(
            update=shown(tallies[a.id].counts if a.id in tallies else Counts(), mine, a.id)
        )
        for a in listed
    ]


# --- likes ------------------------------------------------------------------------------


async def _like(request: Request, on: bool) -> Response:
    claims = await require_caller(request)
    article_id = path_id(request, "article_id", "article")
    await _caught_up(request, claims.user_id, LIKE_DECIDES, article_id)
    target = await target_of(request, article_id)
    position = await like(target, on, container(request).commands, caller(request, claims.user_id))
    body = LikeEnvelope.model_validate({"article": {"id": article_id, "liked": on}})
    return await written(request, JSON(body.model_dump()), position, claims.user_id)


async def like_article(request: Request) -> Response:
    return await _like(request, True)


async def unlike_article(request: Request) -> Response:
    return await _like(request, False)


# --- collections ------------------------------------------------------------------------


async def new_collection(request: Request) -> Response:
    claims = await require_caller(request)
    body = await parse_body(request, CollectionIn)

    async def respond(done: Made) -> Response:
        out = CollectionEnvelope(collection=CollectionRef(id=done.collection_id, name=done.name))
        response = JSON(out.model_dump(mode="json"), status_code=201)
        return await written(request, response, done.position, claims.user_id)

    async def run() -> Response:
        await _caught_up(request, claims.user_id)
        if await queries(request).box_count(claims.user_id) >= MAX_COLLECTIONS:
            raise InvalidInput(
                f"at most {MAX_COLLECTIONS:,} collections each", fields={"name": "too many"}
            )
        commands, who = container(request).commands, caller(request, claims.user_id)
        return await answering(create_collection(body.name, commands, who), respond)

    return await idempotent(request, claims.user_id, run)


async def my_collections(request: Request) -> Response:
    claims, stale = await caller_waited(request, INTERACTIONS_READS, account=False)
    rows = await queries(request).boxes(claims.user_id)
    out = CollectionsOut(
        collections=[
            CollectionOut(id=str(r.id), name=r.name, created_at=r.created_at, articles=r.articles)
            for r in rows
        ]
    )
    return mark_stale(JSON(out.model_dump(mode="json")), stale)


async def _entry(request: Request, on: bool) -> Response:
    claims = await require_caller(request)
    collection_id = path_id(request, "collection_id", "collection")
    article_id = path_id(request, "article_id", "article")
    async with collecting_turn(container(request).commands, claims.user_id, article_id):
        return await _entry_in_turn(request, claims, collection_id, article_id, on)


async def _entry_in_turn(
    request: Request, claims: Claims, collection_id: str, article_id: str, on: bool
) -> Response:
    forget_own_write(request)
    # Taking an article out needs only the caller's own writes (it may be hidden since).
    await _caught_up(request, claims.user_id, article_id=article_id if on else None)
    q = queries(request)
    box = await q.box(collection_id)
    target = await target_of(request, article_id, to_show=on)
    # ``collected`` says, as everywhere, whether the caller holds the article in any of
    # their collections: taken out of one, it may still be in another. Read before the
    # write: once it is recorded, nothing may turn the answer into an error.
    kept = on or await q.kept_elsewhere(claims.user_id, article_id, collection_id)
    who = caller(request, claims.user_id)
    position = await collect(target, box, on, container(request).commands, who)
    body = EntryEnvelope.model_validate(
        {
            "collection": {"id": collection_id, "name": box.name if box else ""},
            "article": {"id": article_id, "collected": kept},
        }
    )
    return await written(request, JSON(body.model_dump(mode="json")), position, claims.user_id)


async def collect_article(request: Request) -> Response:
    return await _entry(request, True)


async def uncollect_article(request: Request) -> Response:
    return await _entry(request, False)


WRITE_ERRORS = (401, 404, 409, 503)

ENDPOINTS = [
    Endpoint(
        "PUT",
        "/v1/articles/{article_id}/like",
        like_article,
        "Like a published article (liking twice counts once)",
        "interactions",
        response=LikeEnvelope,
        auth=True,
        errors=WRITE_ERRORS,
    ),
    Endpoint(
        "DELETE",
        "/v1/articles/{article_id}/like",
        unlike_article,
        "Take back a like (harmless if there was none)",
        "interactions",
        response=LikeEnvelope,
        auth=True,
        errors=WRITE_ERRORS,
    ),
    Endpoint(
        "POST",
        "/v1/collections",
        new_collection,
        "Make a collection",
        "interactions",
        body=CollectionIn,
        response=CollectionEnvelope,
        status=201,
        auth=True,
        errors=(400, 401, 409, 413, 415, 422, 503),
        headers=IDEMPOTENT,
    ),
    Endpoint(
        "GET",
        "/v1/me/collections",
        my_collections,
        "The caller's collections",
        "interactions",
        response=CollectionsOut,
        auth=True,
        errors=(401,),
    ),
    Endpoint(
        "PUT",
        "/v1/collections/{collection_id}/articles/{article_id}",
        collect_article,
        "Put a published article in one of the caller's collections",
        "interactions",
        response=EntryEnvelope,
        auth=True,
        errors=WRITE_ERRORS,
    ),
    Endpoint(
        "DELETE",
        "/v1/collections/{collection_id}/articles/{article_id}",
        uncollect_article,
        "Take an article out of one of the caller's collections",
        "interactions",
        response=EntryEnvelope,
        auth=True,
        errors=WRITE_ERRORS,
    ),
]
