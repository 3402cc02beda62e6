"""``WS /v1/live``: a user's new notifications, pushed as the projector applies them.

The access token comes in the ``Sec-WebSocket-Protocol`` header (offer ``bloghub.live``
and ``bearer.<token>``; the server answers ``bloghub.live``, never the token) or as the
first message, ``{"type": "auth", "token": "..."}``; never in the URL, which proxies and
access logs keep. Then the server sends ``{"type": "ready"}``, each new notification as
``{"type": "notification", "notification": {...}}`` and ``{"type": "ping"}`` every
interval; any message from the client answers a ping. The socket lasts as long as the
access token it was opened with: before that ends, the client sends a fresh one of the
same session (after a refresh) as ``{"type": "auth", "token": "..."}``. Close codes: 4401
not authenticated, a token that expired or a fresh one that is not valid for the session,
4403 the session ended, 4408 silent for two intervals, 4429 too many connections for the
user (or, from one address, still to sign in: ``live_signing_in_per_address`` per API
process), 1009 a message too big, 1013 too slow to read (still behind, sending nothing, for a
ping interval).
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bloghub.api.http import JSON, error_body
from bloghub.auth.tokens import Claims
from bloghub.bootstrap import Container
from bloghub.client_address import client_key
from bloghub.errors import BloghubError, Unavailable
from bloghub.live.hub import Admission
from bloghub.live.socket import (
    SESSION_ENDED,
    TOO_MANY,
    TOO_MANY_SIGNING_IN,
    UNAUTHORIZED,
    Close,
    LiveSocket,
    auth_token,
    close_socket,
)

log = structlog.get_logger(__name__)

PROTOCOL = "bloghub.live"
TOKEN_PREFIX = "bearer."
UNAVAILABLE = Close(1013, "try again later")


async def live(ws: WebSocket) -> None:
    c: Container = ws.app.state.container
    offered = list(ws.scope.get("subprotocols") or [])
    token = next((p[len(TOKEN_PREFIX) :] for p in offered if p.startswith(TOKEN_PREFIX)), None)
    await ws.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    address = ws.client.host if ws.client else "unknown"
    with c.live.signing_in(client_key(address)) as admitted:
        if not admitted:
            log.warning("live.refused_signing_in", client=address)
            await close_socket(ws, TOO_MANY_SIGNING_IN)
            return
        try:
            claims = await _claims(ws, c, token)
        except Unavailable as exc:
            log.warning("live.refused_unavailable", error=repr(exc.__cause__ or exc))
            await close_socket(ws, UNAVAILABLE)
            return
    if claims is None:
        await close_socket(ws, UNAUTHORIZED)
        return
    await _serve(ws, c, claims)


async def _serve(ws: WebSocket, c: Container, claims: Claims) -> None:
    hub, cfg = c.live, c.live.config
    user_agent = ws.headers.get("user-agent", "")

    def reauth(token: str) -> Claims | None:
        try:
            return c.tokens.verify("access", token, user_agent)
        except BloghubError:
            return None

    sock = LiveSocket(
        ws,
        user_id=claims.user_id,
        session_id=claims.session_id,
        process_id=hub.process_id,
        queue_max=cfg.queue_max,
        expires_at=claims.expires_at,
        reauth=reauth,
        slow_after_s=cfg.ping_interval_s,
    )
    try:
        admitted = await hub.join(sock)
        if admitted is Admission.JOINED:  # ``ready`` offered, first of all it sends
            await sock.serve(cfg.max_message_bytes)
        else:
            refused = {Admission.TOO_MANY: TOO_MANY, Admission.ENDED: SESSION_ENDED}
            await close_socket(ws, refused.get(admitted, UNAUTHORIZED))
    except Unavailable as exc:
        log.warning("live.refused_unavailable", error=repr(exc.__cause__ or exc))
        await close_socket(ws, UNAVAILABLE)
    finally:
        await hub.leave(sock)


async def _claims(ws: WebSocket, c: Container, token: str | None) -> Claims | None:
    if token is None:
        token = await _first_message_token(ws, c)
    if token is None:
        return None
    try:
        claims = c.tokens.verify("access", token, ws.headers.get("user-agent", ""))
    except BloghubError:
        return None
    return claims


async def _first_message_token(ws: WebSocket, c: Container) -> str | None:
    """The token of an ``auth`` message sent within the bound, else None."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout=c.live.config.auth_timeout_s)
    except TimeoutError:
        return None
    text = message.get("text")
    if not isinstance(text, str) or len(text) > c.live.config.max_message_bytes:
        return None
    return auth_token(text) or None


class _UpgradeRequired(BloghubError):
    status = 426
    code = "upgrade_required"


async def _not_a_websocket(request: Request) -> Response:
    """A plain HTTP request to the socket's path: told what the path takes, not "Not
    Found" (426, naming the protocol in ``Upgrade`` as RFC 9110 asks)."""
    refused = _UpgradeRequired(
        "/v1/live is a WebSocket: open it with a WebSocket client (ws:// or wss://, an"
        " Upgrade: websocket request), then sign in as the README's live section says"
    )
    return JSON(error_body(refused), status_code=426, headers={"Upgrade": "websocket"})


# Every method a client might send by mistake (HEAD rides on GET).
_EVERY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

WEBSOCKET_ROUTES = [
    WebSocketRoute("/v1/live", live, name="live"),
    Route("/v1/live", _not_a_websocket, methods=list(_EVERY_METHOD), include_in_schema=False),
]
