"""Every failure leaves as the error shape with the right status; never a bare 500 page."""

from __future__ import annotations

import asyncpg
import structlog
from redis.exceptions import RedisError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bloghub.adapters.postgres.engine import translate as translate_postgres
from bloghub.adapters.redis.errors import translate as translate_redis
from bloghub.api.conduit.errors import response as realworld_response
from bloghub.api.conduit.errors import translated as realworld_error
from bloghub.api.consistent import ran_out
from bloghub.api.http import JSON, error_body, realworld_path, shaped_error
from bloghub.errors import (
    BloghubError,
    CatchingUp,
    InvalidInput,
    NoPage,
    NotFound,
    SchemaBehind,
    StoreRejected,
    Transient,
    Unavailable,
)
from bloghub.logs import SELDOM, logged_path, store_unreachable

log = structlog.get_logger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
# What RealWorld's shape names for a refusal by the router: the field, and its words.
_REALWORLD_HTTP = {404: ("path", "not found"), 405: ("method", "not allowed")}


async def on_bloghub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BloghubError)
    if isinstance(exc, SchemaBehind):
        # The missing table or column is the operators' to know (logged), not every
        # client's: they learn only to come back.
        log.warning("api.schema_behind", path=logged_path(request.url.path), error=str(exc))
        exc = _Upgrading("the service is being upgraded; try again shortly")
    if isinstance(exc, NotFound) and not isinstance(exc, NoPage) and ran_out(request):
        # Its wait for a position ran out: what it did not find may be what that position
        # wrote, and a 404 is final for a client. It is asked to come back instead.
        exc = CatchingUp(
            "a change this read waits for is still being applied; try again in a moment"
            f" (so far: {exc.message})"
        )
    if isinstance(exc, Unavailable):
        store_unreachable(request.url.path, exc)  # said if a store is out of reach
    if realworld_path(request.url.path):
        failed = realworld_error(request, exc)
        response = realworld_response(failed.status, failed.errors)
    else:
        response = JSON(error_body(exc), status_code=exc.status)
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is None and isinstance(exc, Unavailable):
        retry_after = _StoreUnwell.retry_after_s  # a store out of reach: come back soon
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    return response


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    path = request.url.path
    field, words = _REALWORLD_HTTP.get(exc.status_code, ("request", str(exc.detail)))
    message = words if realworld_path(path) else str(exc.detail)
    body = shaped_error(path, code, message, field)
    return JSON(body, status_code=exc.status_code, headers=exc.headers)


class _StoreUnwell(Unavailable):
    retry_after_s = 1


class _Upgrading(SchemaBehind):
    retry_after_s = 5


async def on_store_error(request: Request, exc: Exception) -> Response:
    """A store's own words, reaching a request: an unwell store is a 503 to retry, data the
    store refused is the request's (a check the input models lack, logged so it is added)."""
    if isinstance(exc, StoreRejected):
        log.warning("api.store_rejected_input", path=logged_path(request.url.path), error=str(exc))
        mapped: BloghubError = InvalidInput("the data was refused by the store")
    else:
        if (left_out := SELDOM.due("api.store_unwell")) is not None:
            path = request.url.path
            log.warning("api.store_unwell", path=path, error=str(exc), left_out=left_out)
        mapped = _StoreUnwell("a backing store is unwell; try again shortly")
    return await on_bloghub_error(request, mapped)


# What a driver raises when its store is out of reach, wherever a call site did not
# translate it: answered here as the store's state (503 to retry), not as a server fault.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    RedisError,
    OSError,
)


async def on_driver_error(request: Request, exc: Exception) -> Response:
    """A driver's error no call site translated: a store out of reach or unwell is a 503 to
    retry (said once per interval in the log, not per request, while it lasts); anything
    else is a fault of ours (``on_unexpected``). Answered by the router's exception
    middleware, so the connection stays usable and the error is logged once."""
    mapped = translate_redis(exc) if isinstance(exc, RedisError) else translate_postgres(exc)
    if isinstance(mapped, Unavailable):
        mapped.__cause__ = exc
        return await on_bloghub_error(request, mapped)
    if isinstance(mapped, Transient):
        return await on_store_error(request, mapped)
    return await on_unexpected(request, exc)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("api.unexpected_error", path=logged_path(request.url.path))
    message = "something went wrong on our side"
    return JSON(shaped_error(request.url.path, "internal", message, "server"), status_code=500)
