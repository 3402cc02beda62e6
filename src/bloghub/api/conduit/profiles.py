"""RealWorld's profiles by username, and following (the same follows as ``/v1``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import USERS_READS, user_queries
from bloghub.api.conduit.errors import not_found, path_text
from bloghub.api.conduit.reading import applied_if_held, caught_up, maybe_signed_in, signed_in
from bloghub.api.conduit.views import person
from bloghub.api.consistent import pinned, written
from bloghub.api.http import JSON, container
from bloghub.api.queries import UserRow
from bloghub.api.social_queries import SocialQueries
from bloghub.api.v1.sessions import caller
from bloghub.api.v1.social import RELATIONS_READS, FollowCommand
from bloghub.commands.social import Relation, follow_user, unfollow_user
from bloghub.commands.users import USERNAME, username_key
from bloghub.errors import InvalidInput
from bloghub.events.topics import Family

PROFILE_READS = [*USERS_READS, *RELATIONS_READS]


async def _named(request: Request) -> UserRow:
    username = path_text(request, "username", "profile")
    row = await user_queries(request).by_username(username)
    if row is None and await applied_if_held(
        request, USERS_READS, Family.USERS, USERNAME, username_key(username)
    ):
        row = await user_queries(request).by_username(username)
    if row is None or row.erased:
        raise not_found("profile")
    return row


async def _follows(request: Request, me: str | None, them: str) -> bool:
    if me is None:
        return False
    return await SocialQueries(container(request).read_engine, pinned(request)).follows(me, them)


async def profile(request: Request) -> Response:
    claims = await maybe_signed_in(request)
    me = claims.user_id if claims else None
    await caught_up(request, PROFILE_READS, me)
    row = await _named(request)
    following = await _follows(request, me, row.id)
    return JSON({"profile": person(row, row.id).view(following)})


async def follow(request: Request) -> Response:
    return await _follow_or_not(request, follow_user, following=True)


async def unfollow(request: Request) -> Response:
    return await _follow_or_not(request, unfollow_user, following=False)


async def _follow_or_not(request: Request, command: FollowCommand, *, following: bool) -> Response:
    claims = await signed_in(request)
    await caught_up(request, PROFILE_READS, claims.user_id)
    row = await _named(request)
    relation = Relation(row.id, True, await _follows(request, claims.user_id, row.id))
    deps, who = container(request).commands, caller(request, claims.user_id)
    try:
        position = await command(relation, deps, who)
    except InvalidInput as exc:
        if "user_id" not in exc.fields:
            raise
        # /api names people by their username: a front end shows "username cannot be
        # yourself", not the /v1 body's field.
        raise InvalidInput(exc.message, fields={"username": "cannot be yourself"}) from None
    # The command left the relation so (again: no change), whatever the projector's lag.
    out = JSON({"profile": person(row, row.id).view(following)})
    return await written(request, out, position, claims.user_id)
