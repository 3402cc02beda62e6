"""The operator's door: ``Authorization: Bearer <operator token>`` for tools, or a signed,
HttpOnly session cookie for the dashboard page (EventSource cannot send headers)."""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.requests import Request

from bloghub.api.http import container
from bloghub.api.v1.sessions import client_ip
from bloghub.auth.audit import security_event
from bloghub.client_address import client_key
from bloghub.errors import Unauthorized

COOKIE = "bloghub_ops"
SESSION_S = 12 * 3600


def _sign(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"ops-session:{expires}".encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_S)
    return f"{expires}.{_sign(token, expires)}"


def token_matches(request: Request, candidate: str) -> bool:
    return _same(candidate, container(request).settings.operator_token.get_secret_value())


async def require_operator(request: Request) -> None:
    """Pass with the operator token (Bearer) or a fresh session cookie; anything else,
    however malformed, is 401. Every try that presents one is counted per client address
    before it is compared, like the dashboard's login: past the limit even the right token
    waits (429), so guessing gains nothing by going fast, and each wrong one is logged."""
    c = container(request)
    expected = c.settings.operator_token.get_secret_value()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer"
    cookie = request.cookies.get(COOKIE, "")
    if not bearer and not cookie:
        raise Unauthorized("operator token required")  # nothing presented: no guess
    address = client_ip(request)
    ip = client_key(address)  # locked per client (an IPv6 host per /64), logged in full
    await c.operator_checks.attempt(ip, "operator token tries")
    if (bearer and _same(given.strip(), expected)) or _cookie_is_valid(cookie, expected):
        await c.operator_checks.succeeded(ip)
        return
    locked_for_s = await c.operator_checks.failed(ip)
    security_event(
        "ops.auth_failed",
        ip=address,
        user_id=None,
        presented="bearer" if bearer else "cookie",
        locked_for_s=locked_for_s,
    )
    raise Unauthorized("operator token required")


def _cookie_is_valid(cookie: str, token: str) -> bool:
    expires_text, _, signature = cookie.partition(".")
    # ASCII digits only, and few: str.isdigit() takes "²" and int() refuses huge numbers.
    if not (expires_text.isascii() and expires_text.isdigit() and len(expires_text) <= 12):
        return False
    expires = int(expires_text)
    return expires > time.time() and _same(signature, _sign(token, expires))


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())
