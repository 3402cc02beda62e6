"""The Starlette application: routes, middleware, error mapping, and the lifespan that builds
(and closes) every client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from bloghub.api import docs, health
from bloghub.api.errors import on_bloghub_error, on_http_error, on_unexpected
from bloghub.api.http import Endpoint
from bloghub.api.middleware import BodyLimit, RequestId
from bloghub.api.v1 import users
from bloghub.bootstrap import Container, build
from bloghub.errors import BloghubError
from bloghub.settings import Settings

ContainerFactory = Callable[[Settings], Awaitable[Container]]


def all_endpoints() -> list[Endpoint]:
    return [*health.ENDPOINTS, *docs.ENDPOINTS, *users.ENDPOINTS]


def create_app(settings: Settings, *, factory: ContainerFactory = build) -> Starlette:
    endpoints = all_endpoints()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.container = await factory(settings)
        try:
            yield
        finally:
            await app.state.container.close()

    app = Starlette(
        routes=[ep.route() for ep in endpoints],
        middleware=[
            Middleware(RequestId),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            BloghubError: on_bloghub_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.endpoints = endpoints
    return app
