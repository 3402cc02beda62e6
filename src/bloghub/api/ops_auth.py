"""The operator's door: ``Authorization: Bearer <operator token>`` for tools, or a signed,
HttpOnly session cookie for the dashboard page (EventSource cannot send headers)."""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.requests import Request

from bloghub.api.http import container
from bloghub.errors import Unauthorized

COOKIE = "bloghub_ops"
SESSION_S = 12 * 3600


def _sign(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"ops-session:{expires}".encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_S)
    return f"{expires}.{_sign(token, expires)}"


def token_matches(request: Request, candidate: str) -> bool:
    expected = container(request).settings.operator_token.get_secret_value()
    return hmac.compare_digest(candidate.encode(), expected.encode())


def require_operator(request: Request) -> None:
    expected = container(request).settings.operator_token.get_secret_value()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        return
    cookie = request.cookies.get(COOKIE, "")
    expires_text, _, signature = cookie.partition(".")
    fresh = expires_text.isdigit() and int(expires_text) > time.time()
    if fresh and hmac.compare_digest(signature, _sign(expected, int(expires_text))):
        return
    raise Unauthorized("operator token required")
