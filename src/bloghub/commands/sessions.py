"""Sessions: start one (any login method), rotate its refresh token, end it.

Each command writes the session's state to the session store before it appends its event,
so a logout or a revocation holds at once, however far the projectors lag. Refresh tokens
are single use: a refresh is accepted only with the session's current token; any other
token of the session (an older one, or a second use racing the first) can only mean a
token leaked, so the whole session ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bloghub.adapters.redis.sessions import Rotation
from bloghub.auth.tokens import TokenPair, ua_hash
from bloghub.commands.context import Caller, CommandDeps
from bloghub.errors import Unauthorized
from bloghub.events.position import Position
from bloghub.events.users import SessionRefreshed, SessionRevoked, SessionStarted

Method = Literal["password", "sms", "wechat"]


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
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    method: Method,
    user_agent: str,
    access_ttl_s: int | None = None,
    credentials_epoch: str | None = None,
) -> Issued:
    """A new session; with ``credentials_epoch`` (the epoch read before the password was
    checked, or before a phone or WeChat login made sure the account is not erased:
    ``login_epoch``), refused if the credentials were sealed meanwhile."""
    pair = deps.tokens.issue(user_id, user_agent, access_ttl_s=access_ttl_s)
    opened = await deps.sessions.open(
        pair.session_id,
        user_id,
        pair.refresh_jti,
        pair.session_ends_at,
        epoch=credentials_epoch,
    )
    if not opened:
        if method == "password":
            raise Unauthorized("email or password is wrong")
        raise Unauthorized("the account changed while signing in; sign in again")
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
    deps: CommandDeps, caller: Caller, *, refresh_token: str, user_agent: str
) -> Issued:
    claims = deps.tokens.verify("refresh", refresh_token, user_agent)
    who, sid = Caller(claims.user_id, caller.request_id), claims.session_id
    pair = deps.tokens.issue(
        claims.user_id, user_agent, session_id=sid, started_at=claims.session_started_at
    )
    rotation = await deps.sessions.rotate(sid, claims.user_id, claims.jti, pair.refresh_jti)
    if rotation is Rotation.REUSED:
        revoked = SessionRevoked(user_id=claims.user_id, session_id=sid, reason="refresh_reuse")
        raise RefreshReused(claims.user_id, await deps.record(who, revoked))
    if rotation is Rotation.ENDED:
        raise Unauthorized("the session has ended; log in again")
    refreshed = SessionRefreshed(
        user_id=claims.user_id, session_id=sid, refresh_jti=pair.refresh_jti
    )
    try:
        position = await deps.record(who, refreshed)
    except Exception:
        # The new pair never reaches the client, so the token it sent stays the current
        # one: a retry is not mistaken for reuse.
        await deps.sessions.restore(sid, claims.jti, pair.refresh_jti)
        raise
    return Issued(claims.user_id, pair, position)


async def end_session(
    deps: CommandDeps, caller: Caller, *, user_id: str, session_id: str
) -> Position:
    await deps.sessions.end(session_id, user_id)
    return await deps.record(
        Caller(user_id, caller.request_id),
        SessionRevoked(user_id=user_id, session_id=session_id, reason="logout"),
    )
