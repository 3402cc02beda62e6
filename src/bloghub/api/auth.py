"""Bearer authentication for routes that need a caller."""

from __future__ import annotations

from starlette.requests import Request

from bloghub.api.http import container
from bloghub.auth.tokens import Claims
from bloghub.errors import Unauthorized


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and token.strip():
        return token.strip()
    return None


def optional_caller(request: Request) -> Claims | None:
    token = bearer_token(request)
    if token is None:
        return None
    return container(request).tokens.verify("access", token, request.headers.get("user-agent", ""))


def require_caller(request: Request) -> Claims:
    claims = optional_caller(request)
    if claims is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <access token>")
    return claims
