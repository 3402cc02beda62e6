"""Accounts: signup, the caller's own profile and password, public profiles."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.postgres.user_keys import AccountErased
from bloghub.api.auth import USERS_READS, require_caller, user_queries, wait_as_reader
from bloghub.api.consistent import (
    credentials_current,
    credentials_written,
    mark_stale,
    pinned,
    through_cache,
    through_cache_many,
    written,
)
from bloghub.api.hot import hot_json
from bloghub.api.http import JSON, Endpoint, container, parse_body
from bloghub.api.queries import UserRow
from bloghub.api.social_queries import SocialQueries
from bloghub.api.v1.notifications import unread_count
from bloghub.api.v1.path_ids import path_id
from bloghub.api.v1.proof import BIND_A_PHONE, check_current_password, prove_owner
from bloghub.api.v1.schemas import (
    EraseIn,
    PasswordChangeIn,
    ProfileEnvelope,
    ProfileOut,
    ProfilePatch,
    PublicProfileEnvelope,
    PublicProfileOut,
    SignupIn,
    UserEnvelope,
    UserOut,
    unaddressable,
)
from bloghub.api.v1.sessions import caller, client_ip
from bloghub.auth.audit import security_event
from bloghub.auth.tokens import Claims
from bloghub.commands.users import (
    RegisterUser,
    change_password,
    erase_user,
    register_user,
    update_profile,
)
from bloghub.errors import CatchingUp, InvalidInput, NotFound, Unauthorized
from bloghub.events.topics import Family
from bloghub.readmodels import follow_counts_key, user_info_key

log = structlog.get_logger(__name__)

USER_INFO_TTL_S = 15 * 60
# A public profile shows the follow counts too.
PROFILE_READS = [*USERS_READS, ("social", (Family.SOCIAL,))]


def profile_out(row: UserRow) -> ProfileOut:
    return ProfileOut(
        id=row.id,
        email=row.email,
        phone=row.phone,
        nickname=row.nickname,
        birthday=row.birthday,
        about_me=row.about_me,
        wechat_bound=row.wechat_bound,
        created_at=row.created_at,
    )


async def signup(request: Request) -> Response:
    body = await parse_body(request, SignupIn)
    done = await register_user(
        RegisterUser(body.email, body.password), container(request).commands, caller(request)
    )
    out = UserEnvelope(user=UserOut(id=done.user_id, email=body.email))
    response = JSON(out.model_dump(mode="json", exclude_none=True), status_code=201)
    return await written(request, response, done.position, done.user_id)


async def own_row(request: Request) -> UserRow:
    """The caller's account, read after their own writes (never from the cache, which the
    projector clears only after its commit)."""
    return await _row_of(request, await require_caller(request))


async def _row_of(request: Request, claims: Claims, *, deciding: bool = False) -> UserRow:
    row = await account_of(request, claims.user_id, deciding=deciding)
    if row.erased:
        raise AccountErased()
    return row


async def account_of(request: Request, user_id: str, *, deciding: bool = False) -> UserRow:
    """The signed-in caller's own account. Its session stands, so the account is in the
    log: missing from the read model (an SMS or WeChat login's new account, the users
    projector behind) it is 503 to retry, never "no such user". One a change is
    ``deciding`` on (a proof of the owner: a password, a code to the bound phone) is read
    once the account's last change of its proofs is applied (``credentials_current``): a
    password changed a moment ago must not be proven by the old one, nor a code checked
    against a phone just given up."""
    if deciding:
        await credentials_current(request, user_id)
    row = await user_queries(request).by_id(user_id)
    if row is None:
        raise CatchingUp("your account is still being set up; try again in a moment")
    return row


async def me(request: Request) -> Response:
    row = await own_row(request)
    profile = profile_out(row)
    profile.unread_notifications = await unread_count(request, row.id)
    body = ProfileEnvelope(user=profile).model_dump(mode="json")
    return mark_stale(JSON(body), request.state.stale)


async def patch_me(request: Request) -> Response:
    claims = await require_caller(request)
    body = await parse_body(request, ProfilePatch)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    # Read before the write: once it is recorded, nothing may turn its answer into an error.
    row = await account_of(request, claims.user_id)
    nickname = changes.get("nickname")
    if nickname is not None and nickname != row.nickname:
        problem = unaddressable(nickname)  # a new name; the account's own is kept as it is
        if problem is not None:
            raise InvalidInput("some fields are not valid", fields={"nickname": problem})
    unread = await unread_count(request, claims.user_id)  # the answer is the profile's
    position = await update_profile(
        container(request).commands,
        caller(request),
        user_id=claims.user_id,
        changes=changes,
    )
    merged = profile_out(row).model_copy(update={**changes, "unread_notifications": unread})
    response = JSON(ProfileEnvelope(user=merged).model_dump(mode="json"))
    return await written(
        request, mark_stale(response, request.state.stale), position, claims.user_id
    )


async def change_my_password(request: Request) -> Response:
    claims = await require_caller(request)
    body = await parse_body(request, PasswordChangeIn)
    c = container(request)
    # Read before the proof: a change made meanwhile moves it (two tabs at once).
    seen = await c.commands.sessions.credentials_epoch(claims.user_id)
    row = await account_of(request, claims.user_id, deciding=True)
    await check_current_password(
        request, claims, row, body.current_password, purpose="password_change"
    )
    position = await change_password(
        c.commands,
        caller(request),
        user_id=claims.user_id,
        new_password=body.new_password,
        via="password",
        keep_session_id=claims.session_id,
        credentials_seen=seen,
    )
    return await credentials_written(
        request,
        Response(status_code=204),
        position,
        claims.user_id,
        keep_session=claims.session_id,
    )


async def erase_me(request: Request) -> Response:
    """Erase the caller's account, once they prove it is theirs (``EraseIn``), under the
    same attempt limit per session as the password change and the phone binding: a stolen
    session gets no second set of guesses here."""
    claims = await require_caller(request)
    row = await _row_of(request, claims, deciding=True)
    body = await parse_body(request, EraseIn)
    _fitting_proof(row, body)
    c = container(request)
    verdict = await prove_owner(request, claims, lambda: _owner_proven(request, row, body))
    if not verdict.held:
        security_event(
            "user.erase_refused",
            ip=client_ip(request),
            user_id=row.id,
            session_id=claims.session_id,
            locked_for_s=verdict.locked_for_s,
        )
        if body.password is not None:
            raise Unauthorized("the password is wrong", fields={"password": "wrong"})
        # A code asked for another purpose (an owner's, a binding's) proves no erasure.
        raise Unauthorized(
            "the code is wrong or has expired, or was not asked for an erasure: ask for one "
            "with POST /v1/auth/sms/code, purpose erase",
            fields={"code": "wrong"},
        )
    position = await erase_user(c.commands, caller(request), user_id=row.id)
    security_event("user.erased", ip=client_ip(request), user_id=row.id)
    return await credentials_written(request, Response(status_code=204), position, row.id)


def _fitting_proof(row: UserRow, body: EraseIn) -> None:
    """The proof an account is erased with: its password if it has one (a code alone would
    let whoever holds a session and reads the owner's messages erase it), else a code to
    its phone. The wrong kind is refused (401, as a wrong proof is) before anything is
    checked or counted, saying which to send."""
    if row.password_hash is not None and body.code is not None:
        raise Unauthorized(
            "this account has a password: erase it with the password, not a code",
            fields={"password": "required for an account with a password"},
        )
    if row.password_hash is None and body.password is not None:
        how = "erase it with a code sent to its phone (POST /v1/auth/sms/code, purpose erase)"
        raise Unauthorized(
            f"this account has no password: {how}" + ("" if row.phone else f"; {BIND_A_PHONE}"),
            fields={"password": "this account has none"},
        )
    if body.code is not None and row.phone is None:
        raise Unauthorized(
            f"this account has no phone to send a code to: {BIND_A_PHONE}",
            fields={"code": "no phone bound"},
        )


async def _owner_proven(request: Request, row: UserRow, body: EraseIn) -> bool:
    c = container(request)
    if body.password is not None:
        return await c.commands.hasher.verify(body.password, row.password_hash)
    # A code proves the phone bound to this account, and only if it was asked for erasure.
    assert body.code is not None
    if row.phone is None:
        return False
    return await c.sms.codes.check("erase", row.phone, body.code)


async def public_user(request: Request, user_id: str) -> dict[str, Any] | None:
    """A user's public profile, through the ``user:info`` cache the users projector owns;
    an erased user's is ``{"id": ..., "deleted": true}`` and nothing more."""
    c = container(request)
    found: dict[str, Any] | None = await through_cache(
        request,
        user_info_key(c.cache, user_id),
        USER_INFO_TTL_S,
        partial(_public_from_store, request, user_id),
    )
    return found


async def public_users(
    request: Request, user_ids: Sequence[str]
) -> dict[str, dict[str, Any] | None]:
    """``public_user`` of each of ``user_ids`` (no two alike), their cache entries read in
    one round trip: a page of articles or comments by many authors."""
    c = container(request)
    keyed = {user_info_key(c.cache, user_id): user_id for user_id in user_ids}

    async def fill(key: str) -> dict[str, Any] | None:
        return await _public_from_store(request, keyed[key])

    found = await through_cache_many(request, list(keyed), USER_INFO_TTL_S, fill)
    return {keyed[key]: value for key, value in found.items()}


async def _public_from_store(request: Request, user_id: str) -> dict[str, Any] | None:
    row = await user_queries(request).by_id(user_id)
    if row is None:
        return None
    if row.erased:
        return {"id": row.id, "deleted": True}
    public = PublicProfileOut(
        id=row.id, nickname=row.nickname, about_me=row.about_me, created_at=row.created_at
    )
    return public.model_dump(mode="json")


async def public_profile(request: Request) -> Response:
    user_id = path_id(request, "user_id", "user")
    stale = await wait_as_reader(request, PROFILE_READS)

    async def build() -> dict[str, Any] | None:
        found = await public_user(request, user_id)
        if found is None or found.get("deleted"):
            return None
        return {"user": {**found, **await follow_counts(request, user_id)}}

    body = await hot_json(request, f"user:{user_id}", build)
    if body is None:
        raise NotFound("no such user")
    return mark_stale(Response(body, media_type="application/json"), stale)


async def follow_counts(request: Request, user_id: str) -> dict[str, int]:
    """Followers and followees, through the entry the social projector keeps fresh (the
    profile's hot body is kept while it stands)."""
    c = container(request)

    async def fill() -> dict[str, int]:
        followers, followees = await SocialQueries(c.read_engine, pinned(request)).counts(user_id)
        return {"followers": followers, "followees": followees}

    found: dict[str, int] = await through_cache(
        request, follow_counts_key(c.cache, user_id), USER_INFO_TTL_S, fill
    )
    return found


STALE = {"Bloghub-Stale": "true when the read-your-writes wait ran out"}

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
        "GET",
        "/v1/users/me",
        me,
        "The caller's own account",
        "accounts",
        response=ProfileEnvelope,
        auth=True,
        errors=(401,),
        headers=STALE,
    ),
    Endpoint(
        "PATCH",
        "/v1/users/me",
        patch_me,
        "Change nickname, birthday or about me",
        "accounts",
        body=ProfilePatch,
        response=ProfileEnvelope,
        auth=True,
        errors=(400, 401, 409, 415, 422),
    ),
    Endpoint(
        "POST",
        "/v1/users/me/password",
        change_my_password,
        "Change the password; every other session ends (409 while another change of the "
        "account is under way: retry)",
        "accounts",
        body=PasswordChangeIn,
        status=204,
        auth=True,
        errors=(400, 401, 409, 415, 422, 429),
    ),
    Endpoint(
        "DELETE",
        "/v1/users/me",
        erase_me,
        "Erase the account (with the password, or an SMS code for purpose erase): personal "
        "data becomes unreadable everywhere, sessions end, the email and phone are free again",
        "accounts",
        body=EraseIn,
        status=204,
        auth=True,
        errors=(400, 401, 404, 415, 422, 429),
    ),
    Endpoint(
        "GET",
        "/v1/users/{user_id}",
        public_profile,
        "A user's public profile",
        "accounts",
        response=PublicProfileEnvelope,
        errors=(400, 401, 404),
    ),
]
