"""Sessions: start one (any login method), rotate its refresh token, end it.

Refresh tokens are single use. Using one reserves its id in the write-side index; a second
use of the same token finds the id taken, which can only mean the token leaked (or a
client raced itself), so the whole session is revoked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bloghub.auth.tokens import TokenPair, ua_hash
from bloghub.commands.context import Caller, CommandDeps
from bloghub.errors import Conflict, Unauthorized
from bloghub.events.position import Position
from bloghub.events.users import SessionRefreshed, SessionRevoked, SessionStarted

Method = Literal["password", "sms", "wechat"]
SessionIsActive = Callable[[str, str], Awaitable[bool]]  # (session_id, user_id) -> active?


class RefreshReused(Unauthorized):
    """A refresh token came back a second time; its session is now revoked at ``position``."""

    def __init__(self, user_id: str, position: Position) -> None:
        super().__init__("this refresh token was already used: the session is ended")
        self.user_id = user_id
        self.position = position


@dataclass(frozen=True, slots=True)
class Issued:
    user_id: str
    tokens: TokenPair
    position: Position


async def start_session(
    deps: CommandDeps, caller: Caller, *, user_id: str, method: Method, user_agent: str
) -> Issued:
    pair = deps.tokens.issue(user_id, user_agent)
    started = SessionStarted(
        user_id=user_id,
        session_id=pair.session_id,
        method=method,
        ua_hash=ua_hash(user_agent),
        refresh_jti=pair.refresh_jti,
    )
    position = await deps.record(Caller(user_id, caller.request_id), started)
    return Issued(user_id, pair, position)


async def refresh_session(
    deps: CommandDeps,
    caller: Caller,
    *,
    refresh_token: str,
    user_agent: str,
    is_active: SessionIsActive,
) -> Issued:
    claims = deps.tokens.verify("refresh", refresh_token, user_agent)
    who = Caller(claims.user_id, caller.request_id)
    try:
        await deps.reservations.reserve("refresh_jti", claims.jti, claims.session_id)
    except Conflict:
        revoked = SessionRevoked(
            user_id=claims.user_id, session_id=claims.session_id, reason="refresh_reuse"
        )
        raise RefreshReused(claims.user_id, await deps.record(who, revoked)) from None
    if not await is_active(claims.session_id, claims.user_id):
        raise Unauthorized("the session has ended; log in again")
    pair = deps.tokens.issue(claims.user_id, user_agent, session_id=claims.session_id)
    position = await deps.record(
        who,
        SessionRefreshed(
            user_id=claims.user_id, session_id=claims.session_id, refresh_jti=pair.refresh_jti
        ),
    )
    return Issued(claims.user_id, pair, position)


async def end_session(
    deps: CommandDeps, caller: Caller, *, user_id: str, session_id: str
) -> Position:
    return await deps.record(
        Caller(user_id, caller.request_id),
        SessionRevoked(user_id=user_id, session_id=session_id, reason="logout"),
    )
