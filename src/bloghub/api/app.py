"""The Starlette application: routes, middleware, error mapping, and the lifespan that builds
(and closes) every client."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from bloghub.api import conduit, docs, health, metrics, ops
from bloghub.api.errors import (
    DRIVER_ERRORS,
    on_bloghub_error,
    on_driver_error,
    on_http_error,
    on_store_error,
    on_unexpected,
)
from bloghub.api.fast_reads import FastReads
from bloghub.api.http import Endpoint, no_body, sends_body, takes_no_body
from bloghub.api.middleware import BodyLimit, RequestId, RequestIds, RequestLog, ShapedCORS
from bloghub.api.rate_limit import RateLimit
from bloghub.api.routing import IndexedRouter
from bloghub.api.v1 import (
    articles,
    collected,
    comments,
    drafts,
    live,
    notifications,
    presence,
    ranking,
    sessions,
    sms,
    social,
    users,
    wechat,
)
from bloghub.api.v1 import interactions as v1_interactions
from bloghub.api.v1 import search as search_routes
from bloghub.auth.limiter import LocalLimiter
from bloghub.bootstrap import Container, build
from bloghub.errors import BloghubError, StoreRejected, Transient
from bloghub.heap import settle_heap
from bloghub.logs import access_log
from bloghub.settings import Settings

ContainerFactory = Callable[[Settings], Awaitable[Container]]


class FrontedApp(Starlette):
    """Starlette with middleware in front of its own error middleware: the hottest reads
    (``FastReads``) answer without passing through it, which wraps every ``send`` of every
    request in a closure of its own. What goes in front never raises past itself (the
    proxy headers' rewrite, the fast path's own guard), so the error middleware has nothing
    of it to catch; every other request goes down the whole stack."""

    def __init__(self, *, front: Sequence[Middleware] = (), **kwargs: Any) -> None:
        self.front = list(front)
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.front):
            app = cls(app, *args, **kwargs)
        return app


def all_endpoints() -> list[Endpoint]:
    return [
        *health.ENDPOINTS,
        *docs.ENDPOINTS,
        *metrics.ENDPOINTS,
        *ops.ENDPOINTS,
        *users.ENDPOINTS,
        *sessions.ENDPOINTS,
        *wechat.ENDPOINTS,
        *sms.ENDPOINTS,
        *drafts.ENDPOINTS,
        *articles.ENDPOINTS,
        *ranking.ENDPOINTS,
        *social.ENDPOINTS,
        *comments.ENDPOINTS,
        *search_routes.ENDPOINTS,
        *v1_interactions.ENDPOINTS,
        *collected.ENDPOINTS,
        *notifications.ENDPOINTS,
        *presence.ENDPOINTS,
    ]


class PathRoute(Route):
    """One method of a path. The router answers a method the path lacks from the first route
    of that path it meets: this one names every method of the path in ``Allow``, as a 405
    must, rather than only its own."""

    def __init__(self, ep: Endpoint, allow: Collection[str]) -> None:
        super().__init__(ep.path, ep.handler, methods=[ep.method], name=f"{ep.method} {ep.path}")
        self.allow = ", ".join(sorted(allow))
        self.takes_no_body = takes_no_body(ep)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        if self.takes_no_body and sends_body(scope):
            receive = await no_body(receive)
        await super().handle(scope, receive, send)


def routes(endpoints: Sequence[Endpoint]) -> list[Route]:
    allow: dict[str, set[str]] = defaultdict(set)
    for ep in endpoints:
        # Starlette serves HEAD wherever it serves GET.
        allow[ep.path].update({ep.method, "HEAD"} if ep.method == "GET" else {ep.method})
    return [PathRoute(ep, allow[ep.path]) for ep in endpoints]


EXPOSED_HEADERS = [
    "x-jwt-token",
    "x-refresh-token",
    "x-request-id",
    "bloghub-position",
    "bloghub-stale",
    "bloghub-ranking-version",
    "retry-after",
]


def _cors(settings: Settings) -> list[Middleware]:
    """CORS only for the origins settings name (never ``*`` with credentials: settings
    refuse that combination)."""
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            ShapedCORS,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "authorization",
                "content-type",
                "idempotency-key",
                "bloghub-after",
                "x-refresh-token",
                "x-request-id",
                # Sent by jQuery-style clients and RealWorld's own API test collection.
                "x-requested-with",
            ],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    ]


def _proxies(settings: Settings) -> list[Middleware]:
    """The client address from X-Forwarded-For, only when a trusted proxy sent it. It is
    done here rather than by the server so that every way of serving the app (``bloghub
    api``, ``bloghub run``, another ASGI server) trusts exactly ``trusted_proxies``."""
    if not settings.trusted_proxies:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)]


def create_app(
    settings: Settings, *, factory: ContainerFactory = build, serving: bool = False
) -> Starlette:
    """``serving``: the app is what this process is for (``bloghub api``, ``bloghub run``),
    so once it is built the process's heap is settled (bloghub/heap.py); an app served
    inside another program (the tests) leaves that program's collector alone."""
    endpoints = all_endpoints()
    http_metrics = metrics.HttpMetrics()
    route_of: dict[Hashable, str] = {ep.handler: ep.path for ep in endpoints}
    route_of |= {ep.handler: conduit.PREFIX + ep.path for ep in conduit.ENDPOINTS}

    def observe(scope: Scope, status: int, seconds: float) -> None:
        # A path no route matched carries no endpoint, or under a mount the mounted router
        # itself (which cannot be a dict key): either is "unmatched".
        endpoint = scope.get("endpoint")
        router = getattr(scope.get("app"), "router", None)
        if endpoint is None and status >= 500 and isinstance(router, IndexedRouter):
            # Failed before routing (in a middleware): counted under the route it was for.
            endpoint = router.endpoint_of(scope)
        hashable = isinstance(endpoint, Hashable)
        route = route_of.get(endpoint, "unmatched") if hashable else "unmatched"
        http_metrics.observe(scope["method"], route, status, seconds)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.container = container = await factory(settings)
        # What start-up built lives as long as the process: out of the collector's scans,
        # which every request's garbage would otherwise make rescan it.
        if serving:
            settle_heap()
        stop = asyncio.Event()
        background = asyncio.create_task(container.run_background(stop))
        try:
            yield
        finally:
            stop.set()
            try:
                await background
            finally:
                await container.close()

    lines = access_log(settings)
    # One set of per-process buckets for the anonymous limit, whichever path answers.
    local = LocalLimiter(settings.rate_ip_per_minute, 60.0)
    ids = RequestIds()  # one series of request ids, whichever path answers
    app = FrontedApp(
        routes=[
            *routes(endpoints),
            *live.WEBSOCKET_ROUTES,
            Mount(conduit.PREFIX, app=conduit.router(routes)),
        ],
        front=[
            *_proxies(settings),
            Middleware(
                FastReads,
                log=RequestLog(
                    observe=observe, sample_reads=settings.log_sample_reads, access_log=lines
                ),
                local=local,
                enabled=settings.fast_reads,
                ids=ids,
            ),
        ],
        middleware=[
            Middleware(
                RequestId,
                observe=observe,
                sample_reads=settings.log_sample_reads,
                access_log=lines,
                ids=ids,
            ),
            *_cors(settings),
            Middleware(
                RateLimit,
                per_ip=settings.rate_ip_per_minute,
                per_user=settings.rate_user_per_minute,
                access_secret=settings.access_token_secret.get_secret_value(),
                local=local,
            ),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            BloghubError: on_bloghub_error,
            HTTPException: on_http_error,
            Transient: on_store_error,
            StoreRejected: on_store_error,
            **dict.fromkeys(DRIVER_ERRORS, on_driver_error),
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.router = IndexedRouter(app.router.routes, lifespan=lifespan)
    app.state.endpoints = endpoints
    app.state.http_metrics = http_metrics
    return app
