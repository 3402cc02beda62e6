"""The account owner's proof (the current password, or a code to the bound phone), asked by
the routes that change what an account is (its phone, its password) or erase it.

Every proof is checked under one attempt limit per session, so a stolen access token never
turns into unlimited guesses: each try is counted before it is checked, and too many
failures lock that session's proofs for a while, even the right one. The limit is keyed by
session, not by account, so that it cannot be aimed at the owner: a stolen session that
keeps failing locks only itself, and the owner, from any other session (a fresh login
makes one), still proves the password and changes it, which ends the stolen session. Total
guessing stays bounded: a holder of stolen tokens cannot open sessions of their own
without a credential, and logins are under the login lockout (``auth/lockout.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request

from bloghub.api.http import container
from bloghub.api.queries import UserRow
from bloghub.api.v1.sessions import client_ip
from bloghub.auth.audit import security_event
from bloghub.auth.tokens import Claims
from bloghub.errors import Unauthorized

# What an account without a password or without a phone is told to do.
SET_A_PASSWORD = (
    "set one with a code sent to its phone (POST /v1/auth/sms/code, purpose reset, then "
    "POST /v1/auth/password/reset)"
)
BIND_A_PHONE = "bind a phone first (POST /v1/users/me/phone)"

# How a refusal names what is locked ("too many failed <this>; try again in …").
LOCKED = "proofs of ownership in this session"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one proof went: ``held``, or else the seconds of the lock its failure started
    (0 when the session may still try)."""

    held: bool
    locked_for_s: int = 0


def proof_subject(claims: Claims) -> str:
    """What the attempt limit counts: this session of this account."""
    return f"{claims.user_id}:{claims.session_id}"


async def prove_owner(
    request: Request, claims: Claims, proof: Callable[[], Awaitable[bool]]
) -> Verdict:
    """Check ``proof`` under the session's attempt limit. ``RateLimited`` while the session
    is locked, or if this attempt locks it: then ``proof`` is not run at all."""
    limit = container(request).password_checks
    subject = proof_subject(claims)
    await limit.attempt(subject, LOCKED)
    if await proof():
        # Only the right password (or code) clears the count, and whoever gave it holds it.
        await limit.cleared(subject)
        return Verdict(held=True)
    return Verdict(held=False, locked_for_s=await limit.failed(subject))


async def check_current_password(
    request: Request, claims: Claims, row: UserRow | None, password: str, *, purpose: str
) -> None:
    """The caller's current password, or ``Unauthorized`` naming ``current_password``. An
    account with no password (made by an SMS or WeChat login) is told so, and how to set
    one: no guess is counted, as none could be right."""
    hashed = row.password_hash if row is not None else None
    if row is not None and hashed is None:
        raise Unauthorized(
            "this account has no password (it signs in by SMS or WeChat): "
            + SET_A_PASSWORD
            + ("" if row.phone else f"; {BIND_A_PHONE}"),
            fields={"current_password": "this account has none"},
        )
    hasher = container(request).commands.hasher
    verdict = await prove_owner(request, claims, lambda: hasher.verify(password, hashed))
    if verdict.held:
        return
    security_event(
        "password_check.failed",
        ip=client_ip(request),
        user_id=claims.user_id,
        session_id=claims.session_id,
        purpose=purpose,
        locked_for_s=verdict.locked_for_s,
    )
    raise Unauthorized("the current password is wrong", fields={"current_password": "wrong"})
