"""Sessions over HTTP: password login, refresh, logout; and the token response every login
method shares."""

from __future__ import annotations

import asyncio

import structlog
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import (
    USERS_READS,
    require_caller,
    user_agent,
    user_queries,
)
from bloghub.api.consistent import credentials_current, pinned, wait_for_reads, written
from bloghub.api.http import JSON, Endpoint, container, parse_body
from bloghub.api.queries import UserRow
from bloghub.api.v1.schemas import LoginIn, RefreshIn, TokensOut, UserOut, login_email
from bloghub.auth.audit import security_event
from bloghub.commands.context import Caller
from bloghub.commands.sessions import (
    Issued,
    RefreshReused,
    end_session,
    refresh_session,
    start_session,
)
from bloghub.errors import CatchingUp, Transient, Unauthorized, Unavailable
from bloghub.events.position import Position

log = structlog.get_logger(__name__)


def caller(request: Request, actor_id: str | None = None) -> Caller:
    early: tuple[str, asyncio.Future[None]] | None = getattr(request.state, "not_erased", None)
    mine = early is not None and actor_id is not None and early[0] == actor_id
    check = early[1] if early is not None and mine else None
    return Caller(actor_id=actor_id, request_id=request.state.request_id, not_erased=check)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def tokens_response(request: Request, issued: Issued, user: UserOut) -> Response:
    pair = issued.tokens
    out = TokensOut(
        access_token=pair.access,
        refresh_token=pair.refresh,
        expires_in=pair.access_expires_in,
        user=user,
    )
    response = JSON(out.model_dump(mode="json", exclude_none=True))
    response.headers["x-jwt-token"] = pair.access
    response.headers["x-refresh-token"] = pair.refresh
    # Tokens are credentials: no browser, proxy or CDN may keep a copy of this answer.
    response.headers["cache-control"] = "no-store"
    response.headers["pragma"] = "no-cache"
    return await written(request, response, issued.position, issued.user_id)


def user_out(row: UserRow) -> UserOut:
    return UserOut(id=row.id, email=row.email, created_at=row.created_at)


async def login(request: Request) -> Response:
    body = await parse_body(request, LoginIn)
    issued, row = await password_login(request, body.email, body.password)
    return await tokens_response(request, issued, user_out(row))


async def password_login(
    request: Request, email_in: str, password: str, *, access_ttl_s: int | None = None
) -> tuple[Issued, UserRow]:
    """A session for the account of ``email_in`` if ``password`` is its password (the
    lockout counts failures): for /v1 and /api alike (``access_ttl_s``: see
    ``TokenService.issue``)."""
    c = container(request)
    email, ip = login_email(email_in), client_ip(request)
    row = await _find_for_login(request, email)
    epoch = None
    if row is not None:
        # Read before the change the login might race is looked for: a change sealed
        # after this refuses the session the old password would open (``seal``).
        epoch = await c.commands.sessions.credentials_epoch(row.id)
        row = await _as_of_its_last_write(request, row, email)
    user_id = row.id if row is not None else None
    attempt = await c.lockout.attempt(email, ip, user_id=user_id)
    hashed = row.password_hash if row is not None else None
    if not await c.commands.hasher.verify(password, hashed) or row is None:
        await c.lockout.failed(attempt)
        raise Unauthorized("email or password is wrong")
    # The caller's Bloghub-After only now: read before the password, a forged one's 400
    # told a known email from an unknown one's 401, and no failure was counted. Refused for
    # it, the attempt no longer counts (nor is it a success).
    try:
        if await wait_for_reads(request, USERS_READS, None):
            raise CatchingUp(
                "the change Bloghub-After names is still being applied; try again in a moment"
            )
    except BaseException:
        await c.lockout.abandoned(attempt)
        raise
    try:
        issued = await start_session(
            c.commands,
            caller(request),
            user_id=row.id,
            method="password",
            user_agent=user_agent(request),
            access_ttl_s=access_ttl_s,
            credentials_epoch=epoch,
        )
    except Unauthorized:
        # The password was changed while this login was checked: the one it sent is the
        # old one, a failed try as any wrong one (not a success that clears the count and
        # makes the address known).
        await c.lockout.failed(attempt)
        raise
    # Only once there is a session: a login that opened none (the log unreachable) neither
    # clears the count nor makes the address known; its retry does.
    await c.lockout.succeeded(attempt)
    return issued, row


async def _as_of_its_last_write(request: Request, row: UserRow, email: str) -> UserRow | None:
    """The account as of its own last write and any position the caller names. A password
    changed or reset a moment ago may not be projected yet: checking against the old hash
    would refuse the new password and, worse, let the old one start a session."""
    if await wait_for_reads(request, USERS_READS, row.id, header=False):
        raise CatchingUp("that account changed a moment ago; try again in a moment")
    # The account's own writes are remembered for a while; a password change or erasure
    # as long as the projector may take to apply it (the old password must never work).
    if await credentials_current(request, row.id):
        request.state.caught_up = True
    if not getattr(request.state, "caught_up", False):
        return row  # nothing newer to wait for: the row read is current
    return await user_queries(request).by_email(email)


async def _find_for_login(request: Request, email: str) -> UserRow | None:
    """A just-registered account may not be projected yet: its reservation names the
    position of its event, so wait (bounded) for the projector to pass it."""
    queries = user_queries(request)
    row = await queries.by_email(email)
    if row is not None:
        return row
    c = container(request)
    held = await c.commands.reservations.get("email", email)
    if held is None or held.position is None:
        return None
    reached = await c.progress.wait(
        USERS_READS, Position.decode(held.position), c.settings.read_wait_s, pinned(request)
    )
    row = await queries.by_email(email)
    if row is None and not reached:
        # The account is in the log, not yet in the read model: "wrong password" would be
        # a lie, and counting it towards the lockout would punish the user for our lag.
        raise CatchingUp("that account is still being set up; try again in a moment")
    return row


async def refresh(request: Request) -> Response:
    token = request.headers.get("x-refresh-token")
    if token is None:
        if not request.headers.get("content-length", "0").strip("0") and not (
            request.headers.get("transfer-encoding")
        ):
            # Neither a header nor a body: a credential missing, not a body of the wrong type.
            raise Unauthorized("send the refresh token: x-refresh-token or a JSON body")
        token = (await parse_body(request, RefreshIn)).refresh_token
    try:
        issued = await refresh_session(
            container(request).commands,
            caller(request),
            refresh_token=token,
            user_agent=user_agent(request),
        )
    except RefreshReused as reused:
        security_event("session.refresh_reused", ip=client_ip(request), user_id=reused.user_id)
        raise
    return await tokens_response(request, issued, await _refreshed_user(request, issued.user_id))


async def _refreshed_user(request: Request, user_id: str) -> UserOut:
    """The account for a refresh's answer. The new pair is recorded (the old refresh token
    is spent), so a read model that fails here must not lose the client its tokens."""
    try:
        row = await user_queries(request).by_id(user_id)
    except (Transient, Unavailable) as exc:
        log.warning("sessions.refresh_user_unread", user_id=user_id, error=repr(exc))
        row = None
    return user_out(row) if row is not None else UserOut(id=user_id)


async def logout(request: Request) -> Response:
    # Ends the session whatever the users projector's lag: decided on nothing it applies.
    claims = await require_caller(request, account=False)
    position = await end_session(
        container(request).commands,
        caller(request),
        user_id=claims.user_id,
        session_id=claims.session_id,
    )
    return await written(request, Response(status_code=204), position, claims.user_id)


TOKEN_HEADERS = {"x-jwt-token": "The access token", "x-refresh-token": "The refresh token"}

ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/auth/login",
        login,
        "Log in; returns an access and refresh token pair",
        "accounts",
        body=LoginIn,
        response=TokensOut,
        errors=(400, 401, 413, 415, 422, 429, 503),
        headers=TOKEN_HEADERS,
    ),
    Endpoint(
        "POST",
        "/v1/auth/refresh",
        refresh,
        "Rotate the token pair; a reused refresh token ends the session",
        "accounts",
        body=RefreshIn,
        body_optional=True,
        request_headers={
            "x-refresh-token": "The refresh token, instead of a body: the body is then not read"
        },
        response=TokensOut,
        errors=(400, 401, 415, 422, 503),
        headers=TOKEN_HEADERS,
    ),
    Endpoint(
        "POST",
        "/v1/auth/logout",
        logout,
        "End the caller's session",
        "accounts",
        status=204,
        auth=True,
        errors=(401, 503),
    ),
]
