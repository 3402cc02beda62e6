"""Follows and the feed over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.article_counts import COUNTS_READS
from bloghub.api.auth import (
    USERS_READS,
    caller_waited,
    optional_caller,
    require_caller,
    user_queries,
)
from bloghub.api.consistent import found_or_settled, mark_stale, pinned, wait_for_reads, written
from bloghub.api.http import JSON, Endpoint, container, parse_query
from bloghub.api.idempotency import answering
from bloghub.api.social_queries import SocialQueries
from bloghub.api.v1.article_schemas import PageQuery, PublishedPage
from bloghub.api.v1.articles import ARTICLES_READS, paged, settled_users, summaries_of
from bloghub.api.v1.interactions import INTERACTIONS_READS
from bloghub.api.v1.path_ids import path_id
from bloghub.api.v1.sessions import caller
from bloghub.api.v1.social_schemas import FollowEnvelope, FollowOut, PeoplePage, PersonOut
from bloghub.api.v1.users import public_user
from bloghub.commands.context import Caller, CommandDeps
from bloghub.commands.social import Relation, follow_user, unfollow_user
from bloghub.errors import CatchingUp, NotFound
from bloghub.events.position import Position
from bloghub.events.topics import Family

RELATIONS_READS = [("social", (Family.SOCIAL,))]
# The feed is the social projector's (follows and article times) joined with what the
# articles, users and counts read models show: all are waited for, so a follow and then
# the author's next article are in the follower's feed at once.
FEED_READS = [
    ("social", (Family.SOCIAL, Family.ARTICLES)),
    *INTERACTIONS_READS,
    *ARTICLES_READS,
    *USERS_READS,
    *COUNTS_READS,
]
# A follow or an unfollow, decided on a relation.
FollowCommand = Callable[[Relation, CommandDeps, Caller], Awaitable[Position]]


def social(request: Request) -> SocialQueries:
    return SocialQueries(container(request).read_engine, pinned(request))


def _user_id(request: Request) -> str:
    return path_id(request, "user_id", "user")


async def _relation(request: Request, follower: str, followee: str) -> Relation:
    """The relation as of the caller's own last follow or unfollow: a decision is never
    made on an older one."""
    if await wait_for_reads(request, RELATIONS_READS, follower):
        raise CatchingUp("your last change is still being applied; try again in a moment")
    # An account made a moment before (its signup answered) is waited for.
    row = await found_or_settled(
        request, USERS_READS, Family.USERS, lambda: user_queries(request).by_id(followee), followee
    )
    known = row is not None and not row.erased
    following = row is not None and await social(request).follows(follower, followee)
    return Relation(followee, known, following, followee_erased=row is not None and row.erased)


async def follow(request: Request) -> Response:
    return await _follow_or_not(request, follow_user, following=True)


async def unfollow(request: Request) -> Response:
    return await _follow_or_not(request, unfollow_user, following=False)


async def _follow_or_not(request: Request, command: FollowCommand, *, following: bool) -> Response:
    claims = await require_caller(request)
    followee = _user_id(request)
    relation = await _relation(request, claims.user_id, followee)

    async def respond(position: Position) -> Response:
        out = FollowEnvelope(follow=FollowOut(user_id=followee, following=following))
        return await written(request, JSON(out.model_dump()), position, claims.user_id)

    deps, who = container(request).commands, caller(request, claims.user_id)
    return await answering(command(relation, deps, who), respond)


async def followers(request: Request) -> Response:
    return await _people(request, followers_of=True)


async def followees(request: Request) -> Response:
    return await _people(request, followers_of=False)


async def _people(request: Request, *, followers_of: bool) -> Response:
    user_id = _user_id(request)
    paging = parse_query(request, PageQuery)
    claims = await optional_caller(request)
    me = claims.user_id if claims else None
    stale = await wait_for_reads(request, [*RELATIONS_READS, *USERS_READS], me)
    found = await public_user(request, user_id)
    if found is None or found.get("deleted"):
        raise NotFound("no such user")
    q = social(request)
    with paged():
        if followers_of:
            page = await q.followers(user_id, paging.limit, paging.cursor)
        else:
            page = await q.followees(user_id, paging.limit, paging.cursor)
    ids = [str(r.user_id) for r in page.items]
    mine = await q.followed_among(me, ids) if me else set()
    # One who followed a moment ago may be newer than the users read model: waited for,
    # never shown as an erased account.
    profiles = await settled_users(request, list(dict.fromkeys(ids)))
    people = [_person(r, profiles.get(str(r.user_id)), mine) for r in page.items]
    body = PeoplePage(users=people, next_cursor=page.next_cursor)
    return mark_stale(JSON(body.model_dump(mode="json")), stale)


def _person(row: Any, found: dict[str, Any] | None, mine: set[str]) -> PersonOut:
    user_id = str(row.user_id)
    gone = found is not None and bool(found.get("deleted"))
    return PersonOut(
        id=user_id,
        nickname=None if gone or found is None else found.get("nickname"),
        deleted=gone,
        followed_at=row.followed_at,
        following=user_id in mine,
    )


async def feed(request: Request) -> Response:
    # Only others' articles (no one follows themselves): the caller's account change is
    # not waited for.
    claims, stale = await caller_waited(request, FEED_READS, account=False)
    paging = parse_query(request, PageQuery)
    with paged():
        page = await social(request).feed(claims.user_id, paging.limit, paging.cursor)
    ids = [str(r.article_id) for r in page.items]
    # An article the feed's copy still lists but the articles read model no longer
    # publishes is left out; the cursor still moves past it.
    found = await summaries_of(request, claims.user_id, ids)
    listed = [found[i] for i in ids if i in found]
    body = PublishedPage(articles=listed, next_cursor=page.next_cursor)
    return mark_stale(JSON(body.model_dump(mode="json")), stale)


FOLLOW_ERRORS = (401, 404, 409, 422, 503)

ENDPOINTS = [
    Endpoint(
        "PUT",
        "/v1/users/{user_id}/follow",
        follow,
        "Follow a user (again: no change)",
        "social",
        response=FollowEnvelope,
        auth=True,
        errors=FOLLOW_ERRORS,
    ),
    Endpoint(
        "DELETE",
        "/v1/users/{user_id}/follow",
        unfollow,
        "Stop following a user (again: no change)",
        "social",
        response=FollowEnvelope,
        auth=True,
        errors=FOLLOW_ERRORS,
    ),
    Endpoint(
        "GET",
        "/v1/users/{user_id}/followers",
        followers,
        "Who follows the user, newest first, each with whether the caller follows them",
        "social",
        response=PeoplePage,
        errors=(400, 401, 404),
        params=PageQuery,
    ),
    Endpoint(
        "GET",
        "/v1/users/{user_id}/followees",
        followees,
        "Whom the user follows, newest first, each with whether the caller follows them",
        "social",
        response=PeoplePage,
        errors=(400, 401, 404),
        params=PageQuery,
    ),
    Endpoint(
        "GET",
        "/v1/feed",
        feed,
        "Published articles of the people the caller follows, newest first",
        "social",
        response=PublishedPage,
        auth=True,
        errors=(400, 401, 404),
        params=PageQuery,
    ),
]
