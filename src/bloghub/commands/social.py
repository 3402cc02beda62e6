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
    caller follows them now (whatever became of their account since)."""

    followee_id: str
    followee_known: bool
    following: bool
    followee_erased: bool = False


async def follow_user(relation: Relation, deps: CommandDeps, caller: Caller) -> Position:
    follower = await _checked(relation, deps, caller)
    if relation.following:
        return Position()
    event = UserFollowed(follower_id=follower, followee_id=relation.followee_id)
    return await deps.record(caller, event)


async def unfollow_user(relation: Relation, deps: CommandDeps, caller: Caller) -> Position:
    if not relation.following:
        # Nothing to end: as any unfollow of someone not followed (a retry, say), 200;
        # yourself included, whom no one can follow.
        if relation.followee_id == _signed_in(caller):
            return Position()
        if not relation.followee_erased:
            await _checked(relation, deps, caller)  # 404 for no such user, as a follow says
        return Position()
    # A relation that is there can always be ended, the followee's account erased since
    # included: the follower is not left with someone they cannot unfollow.
    follower = _signed_in(caller)
    event = UserUnfollowed(follower_id=follower, followee_id=relation.followee_id)
    return await deps.record(caller, event)


def _signed_in(caller: Caller) -> str:
    if caller.actor_id is None:
        raise Forbidden("sign in to follow people")
    return caller.actor_id


async def _checked(relation: Relation, deps: CommandDeps, caller: Caller) -> str:
    actor = _signed_in(caller)
    if relation.followee_id == actor:
        raise InvalidInput("you cannot follow yourself", fields={"user_id": "yourself"})
    if not relation.followee_known:
        raise NotFound("no such user")
    # The tombstone is written with the erasure, so this holds however far the users
    # read model lags behind it.
    try:
        await deps.keys.refuse_erased(relation.followee_id)
    except AccountErased:
        raise NotFound("no such user") from None
    return actor
