"""Every failure leaves as the error shape with the right status; never a bare 500 page."""

from __future__ import annotations

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import JSON, error_body
from bloghub.errors import BloghubError

log = structlog.get_logger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def on_bloghub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BloghubError)
    response = JSON(error_body(exc), status_code=exc.status)
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    return response


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": str(exc.detail)}}
    return JSON(body, status_code=exc.status_code, headers=exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("api.unexpected_error", path=request.url.path)
    body = {"error": {"code": "internal", "message": "something went wrong on our side"}}
    return JSON(body, status_code=500)
