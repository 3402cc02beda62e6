"""The hottest public reads, answered in front of the middleware stack from bytes this
process already holds: the hot ranking (``ranking/served.py``), a cached published
article's detail with its counts and a user's public profile (the in-process tier,
``api/hot.py``).

Such a read needs none of what the stack does for other requests: no session, no Redis
round trip, no body, no route search, no request object, and nothing of it can fail in a
way the error handlers would have to shape. Yet what a client or an operator sees stays
the same: the per-process anonymous limit (the same buckets as ``RateLimit``), the
request id header, the access log line (sampled as any read) and the metrics (under the
same route template) and, where CORS is on, its ``Vary: Origin``. Everything else goes
down the stack as before, so anything this path cannot answer exactly as the stack would
is left to it: a request with a token or a position (read-your-writes), with an
``Origin`` (CORS), a ``HEAD``, a ranking query other than ``limit=N``, an article, counts
or profile not held here, and a request over its limit (the stack answers the 429 and
logs it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from bloghub.api.middleware import NO_STORE, NOSNIFF, RequestIds, RequestLog
from bloghub.api.v1 import articles, ranking, users
from bloghub.api.v1.interactions import held_tally_of, tally_name
from bloghub.auth.limiter import LocalLimiter
from bloghub.client_address import client_key

if TYPE_CHECKING:
    from bloghub.bootstrap import Container

log = structlog.get_logger(__name__)

RANKING_PATH = "/v1/ranking/hot"
ARTICLE_PREFIX = "/v1/articles/"
ARTICLE_PATH_LENGTH = len(ARTICLE_PREFIX) + 36  # a canonical UUID
USER_PREFIX = "/v1/users/"
USER_PATH_LENGTH = len(USER_PREFIX) + 36
# Headers that make a read someone's (a token, a position to wait for) or cross-origin:
# the stack answers those.
LEFT_TO_THE_STACK = frozenset({b"authorization", b"bloghub-after", b"origin"})
JSON_HEADER = (b"content-type", b"application/json")
# What CORS adds to an answer to a request without an ``Origin``: a cache must not hand
# it to a front end of another origin, whose own answer says whether it may read it.
VARY_ORIGIN = (b"vary", b"Origin")
COMPOSED_KEPT = 256  # articles whose anonymous answer is kept whole


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    headers: list[tuple[bytes, bytes]]
    endpoint: Callable[..., object]  # the route's handler, which names it in the metrics
    then: Callable[[], None] | None = None  # what serving it sets off (a read to count)


class FastReads:
    def __init__(
        self,
        app: ASGIApp,
        *,
        log: RequestLog,
        local: LocalLimiter,
        enabled: bool = True,
        ids: RequestIds | None = None,
    ) -> None:
        self.app = app
        self.log = log
        self.local = local
        self.enabled = enabled
        self._ids = ids or RequestIds()  # the stack's: one series of ids per process
        self._details = Details()
        # The headers the stack adds to each of these answers, made once per container
        # (whose settings say whether CORS is on), not per request.
        self._added_for: Container | None = None
        self._added: list[tuple[bytes, bytes]] = [NOSNIFF]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.enabled and scope["type"] == "http" and scope["method"] == "GET":
            started = time.perf_counter()
            request_id, answer, personal = self._answer(scope)
            if answer is not None:
                await self._send(scope, send, answer, request_id, started, personal)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[str, Answer | None, bool]:
        """The request id, the answer if this path gives it, and whether the request
        carried a cookie (whose answer says ``no-store``, as the stack's does)."""
        path: str = scope["path"]
        if path != RANKING_PATH and len(path) not in (ARTICLE_PATH_LENGTH, USER_PATH_LENGTH):
            return "", None, False
        given: bytes | None = None
        cookie = False
        for name, value in scope["headers"]:
            if name in LEFT_TO_THE_STACK:
                return "", None, False
            if name == b"x-request-id":
                if given is None:  # the first, as the stack takes it
                    given = value
            elif name == b"cookie":
                cookie = True
        c: Container | None = getattr(scope["app"].state, "container", None)
        if c is None:
            return "", None, False
        if c is not self._added_for:
            self._added_for, self._added = c, _added_by_the_stack(c)
        # Everything up to the first send is tried here: this path runs in front of the
        # error middleware, so only a bug could get past this, and the stack answers then,
        # in the API's error shape if it must.
        try:
            if path == RANKING_PATH:
                answer = _ranking(c, scope["query_string"])
            elif path.startswith(ARTICLE_PREFIX):
                article_id = path[len(ARTICLE_PREFIX) :]
                answer = self._details.answer(c, article_id, scope)
            elif path.startswith(USER_PREFIX):
                answer = _profile(c, path[len(USER_PREFIX) :])
            else:
                return "", None, False
            if answer is None or not self._allowed(scope):
                return "", None, False
            request_id = self._ids.given_or_next(given or b"")
            if answer.then is not None:
                answer.then()  # last: if it fails, the stack counts the read instead
            return request_id, answer, cookie
        except Exception:
            log.exception("fast_reads.failed", path=path)
            return "", None, False

    def _allowed(self, scope: Scope) -> bool:
        # The same key as ``RateLimit``'s: the two share one bucket per client.
        return self.local.take(f"ip:{client_key(_host(scope))}")

    async def _send(
        self,
        scope: Scope,
        send: Send,
        answer: Answer,
        request_id: str,
        started: float,
        personal: bool,
    ) -> None:
        # A request carrying a cookie (the operator's, say) is answered ``no-store``, as
        # the stack answers every request with credentials: none of these answers sets
        # a Cache-Control of its own.
        added = [*self._added, NO_STORE] if personal else self._added
        headers = [*answer.headers, *added, (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        scope["endpoint"] = answer.endpoint
        self.log.done(scope, 200, time.perf_counter() - started, request_id)


def _added_by_the_stack(c: Container) -> list[tuple[bytes, bytes]]:
    """CORS's ``Vary`` (only if origins are set: ``app._cors``), then ``RequestId``'s."""
    return [VARY_ORIGIN, NOSNIFF] if c.settings.cors_origins else [NOSNIFF]


def _host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _ranking(c: Container, query: bytes) -> Answer | None:
    limit = _limit(query) if query else ranking.DEFAULT_LIMIT
    if limit is None:
        return None  # the stack reads the query (and answers 422 for a bad one)
    snapshot = c.ranking.snapshot
    if snapshot is None:
        return None
    encoded = snapshot.answer(limit, c.ranking.stale)
    return Answer(encoded.body, encoded.raw_headers, ranking.hot)


def _profile(c: Container, user_id: str) -> Answer | None:
    """The public profile the stack's last answer left in the tier (``users.public_profile``
    keeps it under ``user:<id>`` until the users or social projector changes it)."""
    body = c.hot.get(f"user:{user_id}")
    if body is None:
        return None
    return Answer(
        body, [(b"content-length", str(len(body)).encode()), JSON_HEADER], users.public_profile
    )


def _limit(query: bytes) -> int | None:
    name, _, value = query.partition(b"=")
    if name != b"limit" or not value.isdigit() or len(value) > 3:
        return None
    limit = int(value)
    return limit if 1 <= limit <= 100 else None


@dataclass(frozen=True, slots=True)
class _Composed:
    """An anonymous detail answer, kept while the tier holds the very body and counts it
    was made of (so it is remade, not served, once either changes)."""

    body: bytes
    tally: bytes
    answer: bytes
    headers: list[tuple[bytes, bytes]]
    author_id: str


class Details:
    """Anonymous detail answers of the most read articles, composed once per change."""

    def __init__(self, kept: int = COMPOSED_KEPT) -> None:
        self._kept = kept
        self._composed: dict[str, _Composed] = {}

    def answer(self, c: Container, article_id: str, scope: Scope) -> Answer | None:
        body = c.hot.get(f"article:{article_id}")
        raw = c.hot.get(tally_name(article_id))
        if body is None or raw is None:
            return None
        made = self._composed.get(article_id)
        if made is None or made.body is not body or made.tally is not raw:
            made = self._compose(article_id, body, raw)
        host = _host(scope)
        author_id = made.author_id

        def count() -> None:
            articles.count_read(c, article_id, author_id, None, host)

        return Answer(made.answer, made.headers, articles.read, count)

    def _compose(self, article_id: str, body: bytes, raw: bytes) -> _Composed:
        tally = held_tally_of(raw)
        answer = articles.with_counts(body, tally.counts, None, article_id)
        headers = [(b"content-length", str(len(answer)).encode()), JSON_HEADER]
        made = _Composed(body, raw, answer, headers, tally.author_id)
        if len(self._composed) >= self._kept:
            self._composed.clear()  # bounded; refilled by the articles being read
        self._composed[article_id] = made
        return made
