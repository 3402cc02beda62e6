"""Per-IP and per-user request rates for the API, answering 429 with Retry-After. The
dashboard, metrics and health checks are not counted.

Every request counts against its IP's bucket in this process (``LocalLimiter``). An
anonymous read stops there: the hot reads cost no Redis round trip, and their limit is
approximate (per process). An authenticated request or a write is counted in Redis as well
(``SlidingWindowLimiter``, per IP and per user), so those limits hold across processes."""

from __future__ import annotations

import jwt
import orjson
import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from bloghub.auth.limiter import LocalLimiter, SlidingWindowLimiter
from bloghub.errors import Unavailable

log = structlog.get_logger(__name__)

LIMITED_PREFIXES = ("/v1/", "/api/")
READS = frozenset({"GET", "HEAD"})
SUBJECTS_KEPT = 4096


class RateLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: SlidingWindowLimiter | None = None,
        per_ip: int,
        per_user: int,
        access_secret: str,
        window_s: float = 60.0,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.per_ip = per_ip
        self.per_user = per_user
        self.window_s = window_s
        self._secret = access_secret
        self.local = LocalLimiter(per_ip, window_s)
        # token -> subject: a client sends the same access token for many requests, and
        # checking its signature each time was a tenth of an authenticated write's CPU.
        self._subjects: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter or _limiter_of(scope)
        if (
            scope["type"] != "http"
            or limiter is None
            or not scope["path"].startswith(LIMITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = f"ip:{client[0] if client else 'unknown'}"
        nearby = self.local.allow(ip)
        if not nearby.allowed:
            await _too_many(send, nearby.retry_after_s, "ip")
            return
        user = self._user(scope)
        if user is None and scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        checks = [(ip, self.per_ip)]
        if user is not None:
            checks.append((f"user:{user}", self.per_user))
        try:
            refused = await limiter.allow_all(checks, self.window_s)
        except Unavailable:
            log.warning("rate_limit.redis_unavailable")  # fail open: Redis is not the door
            refused = None
        if refused is not None:
            key, decision = refused
            await _too_many(send, decision.retry_after_s, key.split(":", 1)[0])
            return
        await self.app(scope, receive, send)

    def _user(self, scope: Scope) -> str | None:
        """The subject of a validly signed access token; sessions are checked later."""
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token:
            return None
        token = token.strip()
        known = self._subjects.get(token)
        if known is not None:
            return known
        sub = self._subject(token)
        if sub is not None:  # only a valid signature is kept: junk cannot fill this
            if len(self._subjects) >= SUBJECTS_KEPT:
                self._subjects.clear()  # bounded; refilled by the tokens in use
            self._subjects[token] = sub
        return sub

    def _subject(self, token: str) -> str | None:
        try:
            # Only the subject matters here: the audience and the rest are checked later.
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) else None


def _limiter_of(scope: Scope) -> SlidingWindowLimiter | None:
    app = scope.get("app")
    container = getattr(getattr(app, "state", None), "container", None)
    return getattr(container, "limiter", None)


async def _too_many(send: Send, retry_after_s: int, scope_name: str) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": "rate_limited",
                "message": f"too many requests from this {scope_name}; retry in {retry_after_s} s",
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(retry_after_s).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
