"""Follow commands. A follow or unfollow that would change nothing records nothing: both
are idempotent, decided on the relation as of the caller's own last write."""

from __future__ import annotations

from dataclasses import dataclass

from bloghub.adapters.postgres.user_keys import AccountErased
from bloghub.commands.context import Caller, CommandDeps
from bloghub.errors import Forbidden, InvalidInput, NotFound
from bloghub.events.position import Position
from bloghub.events.social import UserFollowed, UserUnfollowed


@dataclass(frozen=True, slots=True)
class Relation:
    """What a decision needs: whether the followee is a live account, and whether the
    caller follows them now."""

    followee_id: str
    followee_known: bool
    following: bool


async def follow_user(relation: Relation, deps: CommandDeps, caller: Caller) -> Position:
    follower = await _checked(relation, deps, caller)
    if relation.following:
        return Position()
    event = UserFollowed(follower_id=follower, followee_id=relation.followee_id)
    return await deps.record(caller, event)


async def unfollow_user(relation: Relation, deps: CommandDeps, caller: Caller) -> Position:
    follower = await _checked(relation, deps, caller)
    if not relation.following:
        return Position()
    event = UserUnfollowed(follower_id=follower, followee_id=relation.followee_id)
    return await deps.record(caller, event)


async def _checked(relation: Relation, deps: CommandDeps, caller: Caller) -> str:
    if caller.actor_id is None:
        raise Forbidden("sign in to follow people")
    if relation.followee_id == caller.actor_id:
        raise InvalidInput("you cannot follow yourself", fields={"user_id": "yourself"})
    if not relation.followee_known:
        raise NotFound("no such user")
    # The tombstone is written with the erasure, so this holds however far the users
    # read model lags behind it.
    try:
        await deps.keys.refuse_erased(relation.followee_id)
    except AccountErased:
        raise NotFound("no such user") from None
    return caller.actor_id
