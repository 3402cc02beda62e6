"""Bearer authentication: a valid access token of a live session.

The token is checked first (signature, algorithm, issuer, audience, expiry, User-Agent);
then the session it names must be live in the session store, which the commands that end
sessions write before they answer: a logout, a password change or a reused refresh token
stops the session's tokens at once, however far the projectors lag. When the store cannot
be asked, the request is refused (503), never let through on an unconfirmed session."""

from __future__ import annotations

from functools import partial

from starlette.requests import Request

from bloghub.api.consistent import USERS_READS as USERS_READS
from bloghub.api.consistent import Reads, pinned, wait_for_reads
from bloghub.api.http import container
from bloghub.api.http_guard import whole
from bloghub.api.queries import UserQueries
from bloghub.api.rate_limit import SessionRead
from bloghub.auth.tokens import Claims
from bloghub.errors import Unauthorized


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and token.strip():
        return token.strip()
    return None


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")


def user_queries(request: Request) -> UserQueries:
    return UserQueries(container(request).read_engine, pinned(request))


async def session_is_live(request: Request, claims: Claims, *, account: bool = True) -> bool:
    """Whether the session is live; if it is, and the answer may show the ``account`` (or
    a change may be decided on it), the caller's request then waits for the users
    projector to pass their own writes (read-your-writes for the account itself); if that
    wait runs out, ``request.state.stale`` says so (api/v1/users.py: ``account_of``)."""
    c = container(request)
    sessions = c.commands.sessions
    # Read in the rate limiter's round trip (api/rate_limit.py) if it could, else here in
    # one: the session, and the caller's own last write that the waits below read next.
    # Only if the whole request had come then: one whose body came later is judged as of
    # when it had all come.
    read: SessionRead | None = getattr(request.state, "session_read", None)
    if read is not None and read.session_id == claims.session_id and read.whole:
        live, own = sessions.owns(read.owner, claims.user_id), read.own_write
    else:
        live, own = await sessions.is_live_reading(
            claims.session_id, claims.user_id, c.own_writes.key(claims.user_id)
        )
    if not live:
        return False
    if not whole(request.scope):
        # Its body is still to come: the body's reader asks again once it has it.
        request.state.session_after_body = partial(_still_live, request, claims)
    deciding = request.method not in ("GET", "HEAD")
    request.state.own_write = (claims.user_id, c.own_writes.own(own, deciding=deciding))
    request.state.stale = account and await wait_for_reads(request, USERS_READS, claims.user_id)
    return True


async def _still_live(request: Request, claims: Claims) -> None:
    """401 if the session ended while the request's body was on its way: a logout, a
    password change or an erasure answered before the request had all come ends it."""
    if not await container(request).commands.sessions.is_live(claims.session_id, claims.user_id):
        raise Unauthorized("the session has ended; log in again")


async def wait_as_reader(request: Request, reads: Reads, *, account: bool = True) -> bool:
    """A public read waits like any other: for ``Bloghub-After``, or for the caller's own
    last write when a token is sent (a bad one is 401). True if the answer may be stale.
    Not ``account``: the answer shows nothing of the caller's account (the ranking, the
    tags), so it does not wait for the users projector."""
    return (await reader_waited(request, reads, account=account))[1]


async def reader_waited(
    request: Request, reads: Reads, *, account: bool = True
) -> tuple[Claims | None, bool]:
    """``wait_as_reader``, with the caller who sent a token (None: anonymous)."""
    claims = None
    if request.headers.get("authorization"):
        claims = await require_caller(request, account=account)
    stale = await wait_for_reads(request, reads, claims.user_id if claims else None)
    # The session check's own wait may have run out where this one found nothing to wait.
    return claims, stale or bool(getattr(request.state, "stale", False))


async def caller_waited(
    request: Request, reads: Reads, *, account: bool = True
) -> tuple[Claims, bool]:
    """A signed-in caller's read of their own things: ``reader_waited`` with a token
    required. Not ``account``: the answer shows nothing the caller's own writes in the
    users topic change (the account, its sessions, its notification marks): their
    drafts, collections or feed do not wait for the users projector to apply them."""
    claims = await require_caller(request, account=account)
    stale = await wait_for_reads(request, reads, claims.user_id, account=account)
    return claims, stale or bool(getattr(request.state, "stale", False))


async def optional_caller(request: Request, *, account: bool = True) -> Claims | None:
    """The caller, or None when no ``Authorization`` is sent. One that is sent and holds no
    token (another scheme, no token after the scheme) is 401, as a bad token is: a client
    whose header went wrong is told so, not served as anonymous."""
    token = bearer_token(request)
    if token is None:
        if request.headers.get("authorization"):
            raise Unauthorized("send Authorization: Bearer <access token>")
        return None
    claims = container(request).tokens.verify("access", token, user_agent(request))
    if not await session_is_live(request, claims, account=account):
        raise Unauthorized("the session has ended; log in again")
    return claims


async def require_caller(request: Request, *, account: bool = True) -> Claims:
    claims = await optional_caller(request, account=account)
    if claims is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <access token>")
    return claims
