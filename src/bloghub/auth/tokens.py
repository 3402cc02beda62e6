"""The access + refresh token pair: HS256 pinned, separate keys, bound to the User-Agent."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import jwt

from bloghub.errors import Unauthorized
from bloghub.ids import new_id_str

ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: str
    refresh: str
    access_expires_in: int
    session_id: str
    refresh_jti: str


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    session_id: str
    jti: str
    issued_at: int
    expires_at: int


def ua_hash(user_agent: str) -> str:
    return hashlib.sha256(user_agent.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class TokenService:
    def __init__(
        self, *, access_secret: str, refresh_secret: str, access_ttl_s: int, refresh_ttl_s: int
    ) -> None:
        self._keys = {"access": access_secret, "refresh": refresh_secret}
        self._ttl = {"access": access_ttl_s, "refresh": refresh_ttl_s}

    def issue(self, user_id: str, user_agent: str, session_id: str | None = None) -> TokenPair:
        sid = session_id or new_id_str()
        refresh_jti = new_id_str()
        return TokenPair(
            access=self._encode("access", user_id, sid, user_agent, new_id_str()),
            refresh=self._encode("refresh", user_id, sid, user_agent, refresh_jti),
            access_expires_in=self._ttl["access"],
            session_id=sid,
            refresh_jti=refresh_jti,
        )

    def verify(self, kind: str, token: str, user_agent: str) -> Claims:
        try:
            data = jwt.decode(
                token,
                self._keys[kind],
                algorithms=[ALGORITHM],
                options={"require": ["sub", "sid", "ua", "iat", "exp", "jti", "typ"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid or expired token") from exc
        if data["typ"] != kind or data["ua"] != ua_hash(user_agent):
            raise Unauthorized("invalid or expired token")
        return Claims(data["sub"], data["sid"], data["jti"], data["iat"], data["exp"])

    def _encode(self, kind: str, user_id: str, sid: str, user_agent: str, jti: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": sid,
            "ua": ua_hash(user_agent),
            "iat": now,
            "exp": now + self._ttl[kind],
            "jti": jti,
            "typ": kind,
        }
        return jwt.encode(claims, self._keys[kind], algorithm=ALGORITHM)
