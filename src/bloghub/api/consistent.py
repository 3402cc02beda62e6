"""Glue between routes and read-your-writes: signed position headers on writes, bounded
waits on reads, one set of generations per request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.consistency import Pinned
from bloghub.api.http import container
from bloghub.errors import CatchingUp, MalformedRequest
from bloghub.events.position import BadPosition, Position
from bloghub.events.topics import Family, partition_of, topic_for

USERS_READS = [("users", (Family.USERS,))]

POSITION_HEADER = "Bloghub-Position"
AFTER_HEADER = "Bloghub-After"
STALE_HEADER = "Bloghub-Stale"

Reads = Sequence[tuple[str, Sequence[Family]]]


async def written(
    request: Request, response: Response, position: Position, actor_id: str | None
) -> Response:
    """Stamp a command response with its position (signed: only positions this service
    issued are waited for) and remember it as the actor's own write. The write is
    recorded: remembering is retried off the request path if Redis fails, and the answer
    (which carries the position anyway) goes out regardless."""
    if position:
        response.headers[POSITION_HEADER] = container(request).positions.seal(position)
        if actor_id is not None:
            await remember_own_write(request, actor_id, position)
    return response


def pinned(request: Request) -> Pinned:
    """The generations this request waits on and reads, resolved once for the request."""
    found: Pinned | None = getattr(request.state, "generations", None)
    if found is None:
        found = request.state.generations = Pinned(container(request).progress)
    return found


def forget_own_write(request: Request) -> None:
    """Drop what this request read of the caller's last write, so the next wait reads it
    afresh: a command retried because another request of the caller's changed the same
    thing first waits for that change, not for the write this request began with; one
    that waited for its turn (commands/turns.py), for the write of the one before it."""
    request.state.wanted = None
    request.state.own_write = None


async def remember_own_write(request: Request, actor_id: str, position: Position) -> None:
    c = container(request)

    async def remember() -> None:
        await c.own_writes.remember(actor_id, position)

    await c.commands.after("remember_own_write", remember, user_id=actor_id)


async def visibility_written(
    request: Request, response: Response, position: Position, user_id: str, hidden_id: str
) -> Response:
    """``written`` for a write that hides an article (a withdraw, a delete) or a comment
    (a delete): likes and collections of the article, replies to the comment, wait for
    the read models to pass it (``OwnWrites.remember_visibility``); remembering is retried
    off the request path if Redis fails."""
    c = container(request)

    async def remember() -> None:
        await c.own_writes.remember_visibility(hidden_id, position)

    await c.commands.after("remember_visibility", remember, hidden_id=hidden_id)
    return await written(request, response, position, user_id)


async def credentials_current(request: Request, user_id: str) -> bool:
    """Wait for the users read model to apply the account's last change of how it is
    proven (``credentials_written``: a password changed or reset, a phone bound, an
    erasure), kept in Redis for a week and with the account's key in PostgreSQL (either
    alone is enough: a Redis that lost its data, a mark still being written there);
    ``CatchingUp`` if it does not within the read bound. A proof checked against the
    account as it was before would let an old password, or a code to a phone given up,
    prove its owner. True if there was such a change to wait for."""
    c = container(request)
    remembered = await c.own_writes.credentials_changed(user_id)
    kept = await c.commands.keys.credentials_changed(user_id)
    changed = c.progress.relevant(USERS_READS, remembered.merge(kept))
    if not changed or await c.progress.reached(USERS_READS, changed, pinned(request)):
        return False
    if not await c.progress.wait(USERS_READS, changed, c.settings.read_wait_s, pinned(request)):
        raise CatchingUp("that account changed a moment ago; try again in a moment")
    return True


async def credentials_written(
    request: Request,
    response: Response,
    position: Position,
    user_id: str,
    *,
    keep_session: str | None = None,
    seal: bool = True,
) -> Response:
    """``written`` for a write that changes how the account signs in (a password change or
    reset, an erasure): logins wait for the users projector to pass it, however long that
    takes (``OwnWrites.remember_credentials``); then the account's sessions but
    ``keep_session`` are ended again and its credentials sealed, so a login that checked
    the old password just before cannot open a session after (``SessionStore.seal``).
    Both are retried off the request path if Redis fails. Not ``seal``: a change of the
    proofs that ends no session (a phone bound), only waited for by what checks them."""
    c = container(request)

    async def remember() -> None:
        await c.own_writes.remember_credentials(user_id, position)
        # Kept on the write side too: Redis may lose it while the projector still lags.
        await c.commands.keys.mark_credentials(user_id, position)
        if seal:
            await c.commands.sessions.seal(user_id, keep=keep_session)

    await c.commands.after("remember_credentials", remember, user_id=user_id)
    return await written(request, response, position, user_id)


async def wait_for_reads(
    request: Request,
    reads: Reads,
    caller_id: str | None,
    also: Position | None = None,
    *,
    header: bool = True,
    account: bool = True,
) -> bool:
    """Wait until ``reads`` have passed the position the caller names (unless not
    ``header``), the caller's own last write (in the users topic too, unless not
    ``account``: the answer shows nothing of the account, its sessions or its notification
    marks) and ``also`` (another's write the answer depends on). Returns True if the
    answer may be stale (the bound ran out); then what the answer did not find may be what
    it waited for (``ran_out``)."""
    c = container(request)
    named, own = await _wanted(request, caller_id, header=header)
    if not account:
        accounts = _accounts(request)
        own = own.restricted_to(t for t, _, _ in own if t != accounts)
    depended = named.merge(also) if also else named
    if also:
        own = own.merge(also)
    if not named and not own:  # the common anonymous read: nothing to wait for
        request.state.caught_up = False
        return False
    # A read that names a position reads the read model it waits on, not a cache, even when
    # the position is long passed: a cache is kept coherent with the active generation's
    # commits (fences, and messages to every process's in-process tier that arrive when
    # they arrive), not with the checkpoint of the generation this request pinned, and a
    # caller may hold a row read before the wait (a login's account). The cost is this
    # request's own: one read of the read model. A search index refresh, which every
    # reader pays for, is decided apart (``waited_for``, api/v1/search.py).
    position = c.progress.relevant(reads, named.merge(own))
    request.state.caught_up = bool(position)
    if not position or await c.progress.reached(reads, position, pinned(request)):
        return False
    _left_to_wait(request)  # the bound starts here: asking where the log ends is in it
    await _refuse_beyond_the_log(request, c.progress.relevant(reads, named))
    reached = await c.progress.wait(reads, position, _left_to_wait(request), pinned(request))
    relevant = c.progress.relevant
    if not reached and _may_hide(request, relevant(reads, depended), relevant(reads, own)):
        request.state.ran_out = True
    return not reached


def _may_hide(request: Request, named: Position, own: Position) -> bool:
    """Whether a write the wait did not reach may be what a "not found" then looked for:
    one the caller named (or the answer depends on), or the caller's own write of anything
    but their account. An account's own changes hide nothing from its lookups (its own
    account is never "not found"; another's is found by a position naming it), and held
    every 404 of the caller's at 503 while a nickname change was applied."""
    if named:
        return True
    accounts = _accounts(request)
    return any(topic != accounts for topic, _ in own.offsets)


def _accounts(request: Request) -> str:
    """The topic of the accounts' own changes."""
    return topic_for(container(request).settings.prefix, Family.USERS)


def ran_out(request: Request) -> bool:
    """Whether a wait of this request ran out of its bound: a "not found" it then answers
    may be the very write it waited for, not yet applied, and must not read as final."""
    return bool(getattr(request.state, "ran_out", False))


def _left_to_wait(request: Request) -> float:
    """What is left of the request's one read bound: a request that waits on several
    read models (the session check for the users projector, then the handler's own) or
    more than once waits ``READ_WAIT_S`` in all, not that for each."""
    now = time.monotonic()
    deadline: float | None = getattr(request.state, "read_deadline", None)
    if deadline is None:
        deadline = request.state.read_deadline = now + container(request).settings.read_wait_s
    return max(0.0, deadline - now)


async def written_so_far(
    request: Request, family: Family, key: str | None = None
) -> Position | None:
    """The last record of each partition of ``family``'s topic as the log stands now (what
    a read model must pass to hold everything written before this request), or only of
    the partition records keyed ``key`` go to; None when the log cannot say just now."""
    c = container(request)
    topic = topic_for(c.settings.prefix, family)
    partitions = c.settings.topic_partitions
    only = None if key is None else partition_of(key, partitions)
    ends = await c.log_ends.now(topic, partitions, only)
    if ends is None:
        return None
    return Position({tp: end - 1 for tp, end in ends.items() if end > 0})


async def passed(request: Request, reads: Reads, target: Position) -> bool:
    """Whether ``reads`` have passed ``target`` (another's write a read depends on), waited
    for up to the read bound; a read after True reads the read model, not a cache."""
    c = container(request)
    if await c.progress.reached(reads, target, pinned(request)):
        return True
    return not await wait_for_reads(request, reads, None, target)


T = TypeVar("T")


async def found_or_settled(
    request: Request,
    reads: Reads,
    family: Family,
    look: Callable[[], Awaitable[T | None]],
    key: str | None = None,
    enough: Callable[[T], bool] | None = None,
) -> T | None:
    """What ``look`` finds in ``reads``; if nothing (or nothing ``enough`` accepts: an
    article found hidden that may have been published again since), looked for once more
    when they have passed every record of ``family`` written before this request (of the
    partition of ``key`` when the records looked for are keyed so: an article's, an
    account's): what another caller's answered write made (an article published, an
    account made a moment before) may not be applied yet, and is waited for rather than
    said not to exist. ``CatchingUp`` if they do not pass it within the read bound, or the
    log cannot say where it ends."""
    found = await look()
    if found is not None and (enough is None or enough(found)):
        return found
    so_far = await written_so_far(request, family, key)
    if so_far is None:
        raise CatchingUp("this cannot be checked just now; try again in a moment")
    # Looked for again even when the read model had passed the log's end already: it may
    # have applied the record between the first look and this check.
    if not await passed(request, reads, so_far):
        raise CatchingUp("a change to this is still being applied; try again in a moment")
    return await look()


def waited_for(request: Request, reads: Reads) -> Position:
    """The part of what this request's wait (``wait_for_reads``) asked for that ``reads``
    read: for a store whose writes become visible apart from its checkpoint (a search
    index's refresh)."""
    memo: tuple[str | None, Position, Position] | None = getattr(request.state, "wanted", None)
    if memo is None:
        return Position({})
    return container(request).progress.relevant(reads, memo[1].merge(memo[2]))


async def _refuse_beyond_the_log(request: Request, named: Position) -> None:
    """A signed position lies within the log unless the log was rebuilt since it was
    issued; waiting for one beyond the end would only hold the request for the whole
    bound. (The caller's own writes, kept here, need no such check.)"""
    if named and await container(request).log_ends.beyond(
        named.offsets, within_s=_left_to_wait(request)
    ):
        said = "the position lies beyond the end of the log"
        raise MalformedRequest(f"{AFTER_HEADER}: {said}", fields={AFTER_HEADER: said})


async def _wanted(
    request: Request, caller_id: str | None, *, header: bool = True
) -> tuple[Position, Position]:
    """The named position (none unless ``header``) and the caller's own last write,
    worked out once per request (an authenticated read waits for the users projector, then
    for its own)."""
    if not header:
        return Position({}), await _own(request, caller_id)
    memo: tuple[str | None, Position, Position] | None = getattr(request.state, "wanted", None)
    if memo is not None and memo[0] == caller_id:
        return memo[1], memo[2]
    named = Position({})
    token = request.headers.get(AFTER_HEADER)
    if token:
        try:
            named = container(request).positions.open(token)
        except BadPosition as exc:
            said = str(exc)
            raise MalformedRequest(f"{AFTER_HEADER}: {said}", fields={AFTER_HEADER: said}) from exc
    own = await _own(request, caller_id)
    request.state.wanted = (caller_id, named, own)
    return named, own


async def _own(request: Request, caller_id: str | None) -> Position:
    if caller_id is None:
        return Position({})
    # A named position never hides the caller's own writes (a login's session, say).
    read: tuple[str, Position] | None = getattr(request.state, "own_write", None)
    if read is not None and read[0] == caller_id:
        return read[1]  # read with the session check (api/auth.py)
    deciding = request.method not in ("GET", "HEAD")  # a change, decided as of its last
    return await container(request).own_writes.last(caller_id, deciding=deciding)


async def through_cache(
    request: Request, key: str, ttl_s: int, fill: Callable[[], Awaitable[Any]]
) -> Any:
    """Through the cache a projector owns, unless this read had to catch up with a
    position: then straight from the read model it waited for."""
    if getattr(request.state, "caught_up", False):
        return await fill()
    found = await container(request).cache.lookup(key, ttl_s, fill)
    # A hot read (api/hot.py) keeps its body with the counter of every entry it came from.
    counters: dict[str, int | None] | None = getattr(request.state, "cache_counters", None)
    if counters is not None:
        counters[key] = found.counter
    return found.value


async def through_cache_many(
    request: Request, keys: Sequence[str], ttl_s: int, fill: Callable[[str], Awaitable[Any]]
) -> dict[str, Any]:
    """``through_cache`` of each of ``keys`` (no two alike): what the cache holds of them
    read in one round trip."""
    if getattr(request.state, "caught_up", False):
        return {key: await fill(key) for key in keys}
    found = await container(request).cache.lookup_many(keys, ttl_s, fill)
    counters: dict[str, int | None] | None = getattr(request.state, "cache_counters", None)
    if counters is not None:
        counters.update((key, entry.counter) for key, entry in found.items())
    return {key: entry.value for key, entry in found.items()}


def mark_stale(response: Response, stale: bool) -> Response:
    if stale:
        response.headers[STALE_HEADER] = "true"
    return response
