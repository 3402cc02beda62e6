"""Bearer authentication: a valid access token of a live session.

The token is checked first (signature, algorithm, expiry, User-Agent); then the session it
names must be live in the users read model. A caller's own logout or password change is
their own last write, so the check waits for the projector to pass it: after logout the
old tokens stop working at once."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request

from bloghub.api.consistent import Reads, pinned, wait_for_reads
from bloghub.api.http import container
from bloghub.api.queries import UserQueries
from bloghub.auth.tokens import Claims
from bloghub.errors import CatchingUp, Unauthorized
from bloghub.events.topics import Family

USERS_READS = [("users", (Family.USERS,))]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and token.strip():
        return token.strip()
    return None


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")


def user_queries(request: Request) -> UserQueries:
    return UserQueries(container(request).engine, pinned(request))


async def session_is_live(request: Request, session_id: str, user_id: str) -> bool:
    """Whether the session is live, once the projector has passed the caller's own writes."""
    try:
        UUID(session_id)
    except ValueError:
        return False
    stale = await wait_for_reads(request, USERS_READS, user_id)
    request.state.stale = stale
    session = await user_queries(request).session(session_id)
    if session is None and stale:
        raise CatchingUp("sessions are catching up; try again in a moment")
    return session is not None and not session.revoked and session.user_id == user_id


async def wait_as_reader(request: Request, reads: Reads) -> bool:
    """A public read waits like any other: for ``Bloghub-After``, or for the caller's own
    last write when a token is sent (a bad one is 401). True if the answer may be stale."""
    claims = await require_caller(request) if request.headers.get("authorization") else None
    return await wait_for_reads(request, reads, claims.user_id if claims else None)


async def optional_caller(request: Request) -> Claims | None:
    token = bearer_token(request)
    if token is None:
        return None
    claims = container(request).tokens.verify("access", token, user_agent(request))
    if not await session_is_live(request, claims.session_id, claims.user_id):
        raise Unauthorized("the session has ended; log in again")
    return claims


async def require_caller(request: Request) -> Claims:
    claims = await optional_caller(request)
    if claims is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <access token>")
    return claims
