"""Per-IP and per-user request rates for the API, answering 429 with Retry-After. The
dashboard, metrics and health checks are not counted.

Every request counts against its IP's bucket in this process (``LocalLimiter``). An
anonymous read stops there: the hot reads cost no Redis round trip, and their limit is
approximate (per process). An authenticated request or a write is counted in Redis as well
(``SlidingWindowLimiter``, per IP and per user), so those limits hold across processes.

A token counts against its user only while its session is live: whoever holds a token of
an ended session (a logout, a password change) gets 401 from it, and must not be able to
spend the owner's window and have the owner's own sessions refused until it expires."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt
import orjson
import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from bloghub.api.http import shaped_error
from bloghub.api.http_guard import whole
from bloghub.api.routing import IndexedRouter
from bloghub.api.v1.path_ids import canonical_id
from bloghub.auth.limiter import Decision, LocalLimiter, Rate, SlidingWindowLimiter
from bloghub.auth.tokens import bound_to, text_claim
from bloghub.client_address import client_key
from bloghub.errors import Unavailable
from bloghub.logs import SELDOM

if TYPE_CHECKING:
    from bloghub.bootstrap import Container

log = structlog.get_logger(__name__)

LIMITED_PREFIXES = ("/v1/", "/api/")
CHANGES_OF_ONE = frozenset({"PUT", "DELETE"})
ARTICLES, LIKE = "/v1/articles/", "/like"
LIKE_PATH_LENGTH = len(ARTICLES) + 36 + len(LIKE)
COLLECTIONS, IN_COLLECTION = "/v1/collections/", "/articles/"
COLLECTED_PATH_LENGTH = len(COLLECTIONS) + 36 + len(IN_COLLECTION) + 36
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
        local: LocalLimiter | None = None,  # shared with the fast reads (api/fast_reads.py)
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.per_ip = per_ip
        self.per_user = per_user
        self.window_s = window_s
        self._secret = access_secret
        self.local = local or LocalLimiter(per_ip, window_s)
        # token -> subject and session: a client sends the same access token for many
        # requests, and checking its signature each time was a tenth of an authenticated
        # write's CPU.
        self._subjects: dict[tuple[str, str], tuple[str, str]] = {}

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
        ip = f"ip:{client_key(client[0]) if client else 'unknown'}"
        nearby = self.local.allow(ip)
        if not nearby.allowed:
            await _too_many(scope, send, nearby.retry_after_s, "ip")
            return
        user = self._user(scope)
        if user is None and scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        checks = [(ip, self.per_ip)]
        early = _check_not_erased(scope, user)
        try:
            refused = await self._count(scope, limiter, checks, user)
        except Unavailable:
            # Fail open: Redis is not the door. Said once per interval, not per request.
            if (left_out := SELDOM.due("rate_limit.redis_unavailable")) is not None:
                log.warning("rate_limit.redis_unavailable", left_out=left_out)
            refused = None
        if refused is not None:
            if early is not None:
                early.cancel()
            key, decision = refused
            await _too_many(scope, send, decision.retry_after_s, key.split(":", 1)[0])
            return
        await self.app(scope, receive, send)

    async def _count(
        self,
        scope: Scope,
        limiter: SlidingWindowLimiter,
        checks: list[Rate],
        user: tuple[str, str] | None,
    ) -> tuple[str, Decision] | None:
        """Count the request in Redis. For a token's session, the user's window counts it
        only while the session is live (the counting script reads the session itself, so
        this costs no extra round trip); the session and its owner's last write are read in
        the same round trip and left for the session check (api/auth.py), which would
        otherwise ask Redis again at once."""
        container = _container_of(scope)
        if user is None:
            return await limiter.allow_all(checks, self.window_s)
        sub, sid = user
        per_user = [(f"user:{sub}", self.per_user)]
        if container is None:  # no session store to ask, and no session check after
            return await limiter.allow_all([*checks, *per_user], self.window_s)
        sessions = container.commands.sessions
        reads = [sessions.owner_read(sid), ("HGETALL", container.own_writes.key(sub))]
        article_id = added_to(scope)
        if article_id is not None:
            reads.append(("HGETALL", container.own_writes.visibility_key(article_id)))
        refused, (owner, own, *shown) = await limiter.allow_all_reading(
            checks, self.window_s, reads, gated=per_user, gate=sessions.live_gate(sid, sub)
        )
        if not isinstance(owner, Exception) and isinstance(own, list):
            article = None
            if article_id is not None and isinstance(shown[0], list):
                article = (article_id, _fields(shown[0]))
            read = SessionRead(sid, owner, _fields(own), article, whole(scope))
            scope.setdefault("state", {})["session_read"] = read
        return refused

    def _user(self, scope: Scope) -> tuple[str, str] | None:
        """The subject and session of a validly signed access token sent by the client it
        was issued to; the session itself is checked later. A token refused for its
        User-Agent counts against its address only: a copy of it cannot hold its owner
        at 429."""
        # The first of a header sent twice, as the handler reads it (Starlette's
        # ``Headers.get``): a second User-Agent or token cannot make this count another.
        headers: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, value)
        header = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token:
            return None
        sent = (token.strip(), headers.get(b"user-agent", b"").decode("latin-1"))
        known = self._subjects.get(sent)
        if known is not None:
            return known
        sub = self._subject(*sent)
        if sub is not None:  # only a valid signature is kept: junk cannot fill this
            if len(self._subjects) >= SUBJECTS_KEPT:
                self._subjects.clear()  # bounded; refilled by the tokens in use
            self._subjects[sent] = sub
        return sub

    def _subject(self, token: str, user_agent: str) -> tuple[str, str] | None:
        try:
            # The audience and the rest are checked later.
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        if not bound_to(claims.get("ua"), user_agent):
            return None
        sub, sid = claims.get("sub"), claims.get("sid")
        return (sub, sid) if text_claim(sub) and text_claim(sid) else None


def added_to(scope: Scope) -> str | None:
    """The article a like or a collection's change names in its path (canonical, as the
    handler takes it): what it decides on includes the article's last withdraw or delete,
    read in the limiter's round trip rather than in one of its own. None for any other
    request, and for an id in another spelling (the handler reads it then)."""
    if scope["method"] not in CHANGES_OF_ONE:
        return None
    path: str = scope["path"]
    if len(path) == LIKE_PATH_LENGTH and path.startswith(ARTICLES) and path.endswith(LIKE):
        article_id = path[len(ARTICLES) : -len(LIKE)]
    elif len(path) == COLLECTED_PATH_LENGTH and path.startswith(COLLECTIONS):
        if path[len(COLLECTIONS) + 36 : -36] != IN_COLLECTION:
            return None
        article_id = path[-36:]
    else:
        return None
    return article_id if canonical_id(article_id) == article_id else None


def _fields(raw: list[bytes | str]) -> dict[bytes | str, bytes | str]:
    return dict(zip(raw[::2], raw[1::2], strict=True))


def _check_not_erased(scope: Scope, user: tuple[str, str] | None) -> asyncio.Future[None] | None:
    """A write by a signed-in caller is refused if their account was erased (a database
    read, commands/context.py). Started now, it runs beside this round trip and the
    handler's own reads instead of after them; the write waits for its answer."""
    container = _container_of(scope)
    if user is None or container is None or scope["method"] in READS:
        return None
    check = asyncio.ensure_future(container.commands.keys.refuse_erased(user[0]))
    check.add_done_callback(_retrieved)
    scope.setdefault("state", {})["not_erased"] = (user[0], check)
    return check


def _retrieved(check: asyncio.Future[None]) -> None:
    """A request that ends before its write (a bad body, say) never awaits its check."""
    if not check.cancelled():
        check.exception()


@dataclass(frozen=True, slots=True)
class SessionRead:
    """What Redis held for a request's session when the request was counted."""

    session_id: str
    owner: object  # the session's owner as Redis replied (None: no such session)
    own_write: dict[bytes | str, bytes | str]  # the owner's last write position, raw
    # The article a like or collect names (``added_to``), with its last withdraw or delete
    # position, raw; None when it was not read.
    article: tuple[str, dict[bytes | str, bytes | str]] | None = None
    # Whether the whole request, its body too, had come when this was read: if not, it is
    # read again (a logout answered while a body is held open ends the request's session).
    whole: bool = False


def _container_of(scope: Scope) -> Container | None:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "container", None)


def _limiter_of(scope: Scope) -> SlidingWindowLimiter | None:
    return getattr(_container_of(scope), "limiter", None)


async def _too_many(scope: Scope, send: Send, retry_after_s: int, scope_name: str) -> None:
    # Answered before routing: the metrics count it under the route it was meant for.
    router = getattr(scope.get("app"), "router", None)
    if isinstance(router, IndexedRouter):
        scope["endpoint"] = router.endpoint_of(scope)
    message = f"too many requests from this {scope_name}; retry in {retry_after_s} s"
    body = orjson.dumps(shaped_error(scope["path"], "rate_limited", message, "request"))
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
