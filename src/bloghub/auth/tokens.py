"""The access + refresh token pair: HS256 pinned, separate keys, bound to the User-Agent,
naming their issuer and audience, and never outliving their session's absolute end."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt

from bloghub.errors import Unauthorized
from bloghub.ids import new_id_str

ALGORITHM = "HS256"
REQUIRED = ["sub", "sid", "ua", "iat", "exp", "jti", "typ", "iss", "aud", "auth_time"]
# Ids and the binding become session store keys and comparisons: non-empty printable
# text (no control character, no lone surrogate, which no store can encode), no longer
# than an id. Times are whole seconds the session's window and end are counted in.
TEXT_CLAIMS = ("sub", "sid", "jti", "typ", "ua")
TEXT_CLAIM_MAX = 64
TIME_CLAIMS = ("iat", "exp", "auth_time")
VERIFIED_KEPT = 4096


# No session lasts longer: a token that says it ends later is no token ``issue`` made (a
# bound, too, for the time arithmetic a token's end goes into, such as a live socket's).
_LONGEST_SESSION_S = 10 * 366 * 24 * 3600


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: str
    refresh: str
    access_expires_in: int
    session_id: str
    refresh_jti: str
    session_ends_at: int  # epoch seconds: no token of the session is valid after it


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    session_id: str
    jti: str
    issued_at: int
    expires_at: int
    session_started_at: int


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl_s: int
    refresh_ttl_s: int
    session_lifetime_s: int


_VERSIONS = re.compile(r"[0-9]+")


def text_claim(value: object) -> TypeGuard[str]:
    """Whether a claim is one ``issue`` could have written as text (the session store takes
    it as a key)."""
    return isinstance(value, str) and 0 < len(value) <= TEXT_CLAIM_MAX and value.isprintable()


def ua_hash(user_agent: str) -> str:
    """What a token is bound to: its User-Agent without the version numbers. A browser
    that updates itself (a new major version every few weeks) keeps its sessions, and a
    Conduit front end, which has no refresh flow, is not signed out by it; another client
    family is still refused."""
    return _digest(_VERSIONS.sub("", user_agent))


def exact_ua_hash(user_agent: str) -> str:
    """The binding of tokens issued before ``ua_hash`` left versions out: the whole
    User-Agent. Still accepted so they work until they expire (at most a session's
    lifetime); nothing issues it any more."""
    return _digest(user_agent)


def bound_to(binding: object, user_agent: str) -> bool:
    """Whether a token's ``ua`` claim names this User-Agent."""
    return binding == ua_hash(user_agent) or binding == exact_ua_hash(user_agent)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class TokenService:
    def __init__(self, *, access_secret: str, refresh_secret: str, policy: TokenPolicy) -> None:
        self._keys = {"access": access_secret, "refresh": refresh_secret}
        self._ttl = {"access": policy.access_ttl_s, "refresh": policy.refresh_ttl_s}
        self._policy = policy
        # (kind, token, User-Agent) -> its claims, once verified. A client sends the same
        # access token with every request for minutes, and decoding it (base64, JSON, the
        # HMAC and PyJWT's key checks) was a tenth of an authenticated write's CPU. Only
        # the expiry can change a verified token's answer: it is checked on every use.
        self._verified: dict[tuple[str, str, str], Claims] = {}

    def issue(
        self,
        user_id: str,
        user_agent: str,
        *,
        session_id: str | None = None,
        started_at: int | None = None,
        access_ttl_s: int | None = None,
    ) -> TokenPair:
        """A new session's first pair, or (with its id and start) a rotated pair of one.
        ``access_ttl_s``: the access token's life if not the policy's (a client with no
        refresh flow); never past the session's end either way."""
        now = int(time.time())
        start = now if started_at is None else started_at
        ends = start + self._policy.session_lifetime_s
        sid = session_id or new_id_str()
        refresh_jti = new_id_str()
        ttl = self._ttl["access"] if access_ttl_s is None else access_ttl_s
        access = self._encode("access", user_id, sid, user_agent, new_id_str(), start, ttl)
        return TokenPair(
            access=access,
            refresh=self._encode("refresh", user_id, sid, user_agent, refresh_jti, start),
            access_expires_in=max(0, min(ttl, ends - now)),
            session_id=sid,
            refresh_jti=refresh_jti,
            session_ends_at=ends,
        )

    def verify(self, kind: str, token: str, user_agent: str) -> Claims:
        memo = (kind, token, user_agent)
        known = self._verified.get(memo)
        if known is not None and known.expires_at > time.time():
            return known
        claims = self._decode(kind, token, user_agent)
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()  # bounded; refilled by the tokens in use
        self._verified[memo] = claims  # only a valid token is kept: junk cannot fill this
        return claims

    def _decode(self, kind: str, token: str, user_agent: str) -> Claims:
        try:
            data = jwt.decode(
                token,
                self._keys[kind],
                algorithms=[ALGORITHM],
                issuer=self._policy.issuer,
                audience=self._policy.audience,
                options={"require": REQUIRED},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            # ValueError: a token that is not even text PyJWT can split (non-ASCII, say).
            raise Unauthorized("invalid or expired token") from exc
        if not self._sensible(data) or data["typ"] != kind or not bound_to(data["ua"], user_agent):
            raise Unauthorized("invalid or expired token")
        return Claims(
            data["sub"], data["sid"], data["jti"], data["iat"], data["exp"], data["auth_time"]
        )

    def _sensible(self, data: dict[str, Any]) -> bool:
        """Whether the claims have the types and order ``issue`` gives them. Only the key
        makes a token, but a wrong type would be a 500 further on, not a 401."""
        if not all(text_claim(data[c]) for c in TEXT_CLAIMS):
            return False
        if not all(type(data[c]) is int for c in TIME_CLAIMS):  # bool is an int too
            return False
        # PyJWT refuses an ``iat`` after now (no leeway), so no sign-in after it is either.
        issued, expires, started = (int(data[c]) for c in TIME_CLAIMS)
        # Bounded by no session's length, not this policy's: a lifetime lowered since the
        # token was issued ends the session when it says (``issue`` cuts what it makes at
        # it), never refuses the tokens of a session still within it.
        return started <= issued and expires <= started + _LONGEST_SESSION_S

    def _encode(
        self,
        kind: str,
        user_id: str,
        sid: str,
        user_agent: str,
        jti: str,
        started_at: int,
        ttl_s: int | None = None,
    ) -> str:
        now = int(time.time())
        ends = started_at + self._policy.session_lifetime_s
        claims = {
            "iss": self._policy.issuer,
            "aud": self._policy.audience,
            "sub": user_id,
            "sid": sid,
            "ua": ua_hash(user_agent),
            "iat": now,
            # Refreshing never carries a token past the session's absolute end.
            "exp": min(now + (self._ttl[kind] if ttl_s is None else ttl_s), ends),
            "auth_time": started_at,
            "jti": jti,
            "typ": kind,
        }
        return jwt.encode(claims, self._keys[kind], algorithm=ALGORITHM)
