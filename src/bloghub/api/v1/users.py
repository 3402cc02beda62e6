"""Accounts: signup, login, the caller's own profile."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import require_caller
from bloghub.api.consistent import mark_stale, wait_for_reads, written
from bloghub.api.http import JSON, Endpoint, container, parse_body
from bloghub.api.queries import UserQueries, UserRow
from bloghub.api.v1.schemas import LoginIn, SignupIn, TokensOut, UserEnvelope, UserOut, login_email
from bloghub.commands.context import Caller
from bloghub.commands.users import RegisterUser, register_user
from bloghub.errors import NotFound, Unauthorized
from bloghub.events.position import Position
from bloghub.projections.users import UsersProjector

USERS_READS = [(UsersProjector.name, UsersProjector.families)]


def _user_out(row: UserRow) -> UserOut:
    return UserOut(id=row.id, email=row.email, created_at=row.created_at)


def _queries(request: Request) -> UserQueries:
    c = container(request)
    return UserQueries(c.engine, c.progress)


async def signup(request: Request) -> Response:
    body = await parse_body(request, SignupIn)
    caller = Caller(actor_id=None, request_id=request.state.request_id)
    done = await register_user(
        RegisterUser(body.email, body.password), container(request).commands, caller
    )
    out = UserEnvelope(user=UserOut(id=done.user_id, email=body.email))
    response = JSON(out.model_dump(mode="json", exclude_none=True), status_code=201)
    return await written(request, response, done.position, done.user_id)


async def login(request: Request) -> Response:
    body = await parse_body(request, LoginIn)
    c = container(request)
    row = await _find_for_login(request, login_email(body.email))
    if (
        not await c.commands.hasher.verify(body.password, row.password_hash if row else None)
        or row is None
    ):
        raise Unauthorized("email or password is wrong")
    pair = c.tokens.issue(row.id, request.headers.get("user-agent", ""))
    out = TokensOut(
        access_token=pair.access,
        refresh_token=pair.refresh,
        expires_in=pair.access_expires_in,
        user=_user_out(row),
    )
    response = JSON(out.model_dump(mode="json"))
    response.headers["x-jwt-token"] = pair.access
    response.headers["x-refresh-token"] = pair.refresh
    return response


async def _find_for_login(request: Request, email: str) -> UserRow | None:
    """A just-registered account may not be projected yet: its reservation names the
    position of its event, so wait (bounded) for the projector to pass it."""
    queries = _queries(request)
    row = await queries.by_email(email)
    if row is not None:
        return row
    c = container(request)
    held = await c.commands.reservations.get("email", email)
    if held is None or held.position is None:
        return None
    await c.progress.wait(USERS_READS, Position.decode(held.position), c.settings.read_wait_s)
    return await queries.by_email(email)


async def me(request: Request) -> Response:
    claims = require_caller(request)
    stale = await wait_for_reads(request, USERS_READS, claims.user_id)
    row = await _queries(request).by_id(claims.user_id)
    if row is None:
        raise NotFound("no such user")
    return mark_stale(JSON(UserEnvelope(user=_user_out(row)).model_dump(mode="json")), stale)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/v1/users",
        signup,
        "Sign up with email and password",
        "accounts",
        body=SignupIn,
        response=UserEnvelope,
        status=201,
        errors=(400, 409, 413, 415, 422, 503),
        headers={"Bloghub-Position": "Log position of the write, for Bloghub-After"},
    ),
    Endpoint(
        "POST",
        "/v1/auth/login",
        login,
        "Log in; returns an access and refresh token pair",
        "accounts",
        body=LoginIn,
        response=TokensOut,
        errors=(400, 401, 413, 415, 422),
        headers={"x-jwt-token": "The access token", "x-refresh-token": "The refresh token"},
    ),
    Endpoint(
        "GET",
        "/v1/users/me",
        me,
        "The caller's own account",
        "accounts",
        response=UserEnvelope,
        auth=True,
        errors=(401, 404),
        headers={"Bloghub-Stale": "true when the read-your-writes wait ran out"},
    ),
]
