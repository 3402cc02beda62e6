"""RealWorld's users: sign up, log in, the current user and its changes. The same
commands as ``/v1``; a username is the account's nickname, ``bio`` its about-me text and
``image`` its avatar URL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.auth import bearer_token, user_agent, user_queries
from bloghub.api.conduit.errors import ConduitError, blank, conduit_body
from bloghub.api.conduit.reading import signed_in
from bloghub.api.conduit.schemas import LoginIn, NewUserIn, UpdateUser, UpdateUserIn
from bloghub.api.conduit.views import user_view
from bloghub.api.consistent import credentials_written, written
from bloghub.api.http import JSON, container
from bloghub.api.queries import UserRow
from bloghub.api.v1.schemas import unaddressable
from bloghub.api.v1.sessions import caller, password_login
from bloghub.auth.lockout import wait_text
from bloghub.commands.sessions import start_session
from bloghub.commands.users import NewPassword, RegisterUser, register_user, update_profile
from bloghub.errors import Conflict, Unauthorized

# RealWorld's profile fields, as the core's profile fields.
_PROFILE = {"username": "nickname", "bio": "about_me", "image": "image"}


def _no_store(response: Response) -> Response:
    # Tokens are credentials: no browser, proxy or CDN may keep a copy of this answer.
    response.headers["cache-control"] = "no-store"
    return response


async def register(request: Request) -> Response:
    new = (await conduit_body(request, NewUserIn)).user
    c = container(request)
    done = await register_user(
        RegisterUser(new.email, new.password, nickname=new.username), c.commands, caller(request)
    )
    issued = await start_session(
        c.commands,
        caller(request),
        user_id=done.user_id,
        method="password",
        user_agent=user_agent(request),
        access_ttl_s=c.settings.conduit_token_ttl_s,
    )
    row = UserRow(
        id=done.user_id,
        email=new.email,
        password_hash=None,
        phone=None,
        nickname=new.username,
        birthday=None,
        about_me=None,
        wechat_bound=False,
        created_at=datetime.now(UTC),
    )
    out = JSON(user_view(row, issued.tokens.access), status_code=201)
    position = done.position.merge(issued.position)
    return _no_store(await written(request, out, position, done.user_id))


async def login(request: Request) -> Response:
    credentials = (await conduit_body(request, LoginIn)).user
    try:
        issued, row = await password_login(
            request,
            credentials.email,
            credentials.password,
            access_ttl_s=container(request).settings.conduit_token_ttl_s,
        )
    except Unauthorized:
        raise ConduitError(401, {"credentials": ["invalid"]}) from None
    out = JSON(user_view(row, issued.tokens.access))
    return _no_store(await written(request, out, issued.position, row.id))


async def current(request: Request) -> Response:
    claims = await signed_in(request)
    row = await _own(request, claims.user_id)
    return _no_store(JSON(user_view(row, bearer_token(request) or "")))


async def update(request: Request) -> Response:
    claims = await signed_in(request)
    changes = _checked((await conduit_body(request, UpdateUserIn)).user)
    c, who = container(request), caller(request)
    # Read before the session is taken for proof: a change made meanwhile moves it.
    seen = await c.commands.sessions.credentials_epoch(claims.user_id)
    if "password" in changes:
        # RealWorld sends no current password. A new one is taken only from a session
        # signed in moments ago, so an access token that leaked later cannot take the
        # account (`/v1/users/me/password` asks for the current password instead).
        window = c.settings.password_change_window_s
        if time.time() - claims.session_started_at > window:
            raise ConduitError(
                422,  # the spec gives this operation no 403
                {
                    "password": [
                        f"sign in again to change it: a password is changed only within "
                        f"{wait_text(window)} of signing in"
                    ]
                },
            )
    # Read before the write: once it is recorded, nothing may turn its answer into an error.
    row = await _own(request, claims.user_id)
    if "email" in changes and changes["email"] != row.email:
        raise ConduitError(422, {"email": ["cannot be changed"]})
    if changes.get("username") == (row.nickname or row.id):
        # A settings form sends the username back as it shows it (an account without a
        # nickname goes by its id): no rename, so no turn of the account's to wait for.
        del changes["username"]
    if "username" in changes:
        problem = unaddressable(changes["username"])
        if problem is not None:
            raise ConduitError(422, {"username": [problem]})
    profile = {_PROFILE[k]: v for k, v in changes.items() if k in _PROFILE}
    password = (
        NewPassword(changes["password"], claims.session_id, credentials_seen=seen)
        if "password" in changes
        else None
    )
    merged = _merged(row, profile)
    out = JSON(user_view(merged, bearer_token(request) or ""))
    if not profile and password is None:
        return _no_store(out)
    # One append: a taken username refuses the password change with it (nothing recorded).
    try:
        position = await update_profile(
            c.commands,
            who,
            user_id=claims.user_id,
            changes=profile,
            password=password,
        )
    except Conflict as exc:
        if exc.fields:
            raise
        # Another change of the account is under way (two tabs saving at once).
        field = "username" if "username" in changes else "password"
        raise ConduitError(422, {field: [exc.message]}) from None
    if password is not None:
        return _no_store(
            await credentials_written(
                request, out, position, claims.user_id, keep_session=claims.session_id
            )
        )
    return _no_store(await written(request, out, position, claims.user_id))


def _checked(user: UpdateUser) -> dict[str, Any]:
    """The fields sent; those that cannot be cleared must not be null."""
    changes = {name: getattr(user, name) for name in user.model_fields_set}
    if not changes:
        raise ConduitError(422, {"user": ["send at least one field to change"]})
    for name in ("email", "password", "username"):
        if name in changes and changes[name] is None:
            raise blank(name)
    return changes


def _merged(row: UserRow, profile: dict[str, Any]) -> UserRow:
    fields = {k: v for k, v in profile.items() if k in ("nickname", "about_me", "image")}
    return UserRow(**{**_as_dict(row), **fields})


def _as_dict(row: UserRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}


async def _own(request: Request, user_id: str) -> UserRow:
    """The caller's account as of their own last write (the session check waited for it):
    503 to retry if that is not applied yet, never an answer or a decision without it."""
    if getattr(request.state, "stale", False):
        raise ConduitError(503, {"server": ["still applying your last change; try again"]})
    row = await user_queries(request).by_id(user_id)
    if row is None or row.erased:
        raise ConduitError(401, {"token": ["is invalid"]})
    return row
