"""What RealWorld's reads share: the caller, waiting for the caller's own writes, and
articles and profiles shown with their counts and the caller's marks."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from bloghub.api.auth import USERS_READS, optional_caller, require_caller, user_queries
from bloghub.api.conduit.errors import ConduitError
from bloghub.api.conduit.queries import ConduitQueries
from bloghub.api.conduit.views import Listed, Person, article_view, person
from bloghub.api.consistent import Reads, passed, pinned, wait_for_reads, written_so_far
from bloghub.api.http import container
from bloghub.api.social_queries import SocialQueries
from bloghub.api.v1.interactions import queries as interaction_queries
from bloghub.auth.tokens import Claims
from bloghub.events.position import Position
from bloghub.events.topics import Family


def queries(request: Request) -> ConduitQueries:
    return ConduitQueries(container(request).read_engine, pinned(request))


async def signed_in(request: Request) -> Claims:
    return await require_caller(request)


async def maybe_signed_in(request: Request) -> Claims | None:
    return await optional_caller(request)


async def caught_up(
    request: Request, reads: Reads, user_id: str | None, also: Position | None = None
) -> None:
    """Read as of the caller's own last write (RealWorld clients create, then read at
    once, with no header and no retry), and ``also``: 503 to retry if the wait runs out,
    never an answer that lacks what the caller just did."""
    if await wait_for_reads(request, reads, user_id, also):
        # ``also`` is another's write (an author's withdraw), not the caller's.
        change = "a recent change" if also else "your last change"
        raise ConduitError(503, {"server": [f"still applying {change}; try again"]})


def shown_as_author(request: Request) -> None:
    """Before a write whose answer shows the caller as its author: 503 to retry, nothing
    recorded, when the sign-in check's wait for the caller's own account ran out. The
    answer would show the account as the read model has it: a new one not at all (as
    "deleted user"), a renamed one by the name it just gave up."""
    if getattr(request.state, "stale", False):
        raise ConduitError(503, {"server": ["still applying your last change; try again"]})


async def applied_if_held(
    request: Request, reads: Reads, family: Family, kind: str, value: str
) -> bool:
    """Whether the write-side index holds ``value`` (a username, a slug) that the read model
    did not show: then, once ``reads`` have passed the write that took it (its position,
    or while its key is pending the log as it stands), True, to look again; 503 to retry
    if they do not within the bound. A name is taken for everyone the moment its writer
    is answered: a profile or article link shared at once, or a follow of someone who
    signed up a moment before, finds it rather than "not found" while projectors lag."""
    held = await container(request).commands.reservations.get(kind, value)
    if held is None:
        return False
    if held.position is not None:
        target: Position | None = Position.decode(held.position)
    else:
        target = await written_so_far(request, family)
    if target is None or not await passed(request, reads, target):
        raise ConduitError(503, {"server": ["still applying a recent change; try again"]})
    return True


async def people(request: Request, me: str | None, user_ids: list[str]) -> dict[str, Any]:
    """The profile of each of ``user_ids`` as RealWorld shows it to ``me``. An author the
    users read model does not hold yet (an account made a moment before its first article
    or comment) is waited for, never shown as the erased "deleted user": 503 to retry if
    the wait runs out. The caller's own account is not waited for here: the sign-in check
    waited for it (within the read bound), and a write's answer, which shows only the
    caller, must not turn into an error once the write is recorded."""
    unique = list(dict.fromkeys(user_ids))
    rows = await user_queries(request).by_ids(unique)
    missing = [i for i in unique if i not in rows and i != me]
    if missing:
        key = missing[0] if len(missing) == 1 else None
        so_far = await written_so_far(request, Family.USERS, key)
        if so_far is None or not await passed(request, USERS_READS, so_far):
            raise ConduitError(503, {"server": ["still applying a recent change; try again"]})
        rows.update(await user_queries(request).by_ids(missing))
    found: dict[str, Person] = {i: person(rows.get(i), i) for i in unique}
    social = SocialQueries(container(request).read_engine, pinned(request))
    following = await social.followed_among(me, unique) if me else set()
    return {i: p.view(i in following) for i, p in found.items()}


async def articles_out(
    request: Request, me: str | None, shown: list[Listed], *, body: bool
) -> list[dict[str, Any]]:
    """``shown`` with their authors, favorites counts and whether ``me`` favorited each."""
    ids = [a.id for a in shown]
    interactions = interaction_queries(request)
    tallies = await interactions.tallies(ids)
    liked = (await interactions.mine(me, ids)).liked if me and ids else set()
    authors = await people(request, me, [a.author_id for a in shown])
    return [
        article_view(
            a,
            authors[a.author_id],
            a.id in liked,
            tallies[a.id].counts.like_cnt if a.id in tallies else 0,
            body=body,
        )
        for a in shown
    ]
