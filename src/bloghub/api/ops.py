"""The operator's dashboard: ``/ops`` (page), ``/ops/api/*`` (JSON and a live stream)."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Annotated

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from bloghub.api.assets import UPLOT, catalog, serve
from bloghub.api.http import JSON, Endpoint, container, parse_body, parse_query
from bloghub.api.ops_auth import COOKIE, SESSION_S, require_operator, session_cookie, token_matches
from bloghub.api.ops_migrations import ENDPOINT as MIGRATION_PHASE
from bloghub.api.v1.schemas import PLAIN
from bloghub.api.v1.sessions import client_ip
from bloghub.auth.audit import security_event
from bloghub.client_address import client_key
from bloghub.errors import RateLimited, Unauthorized, Unavailable
from bloghub.settings import Mode

# uPlot, like the page's own script, styles through the DOM: no inline script or style,
# nothing from another origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_ASSETS = catalog(("ops.js", "ops.css", "ops-login.js"), (UPLOT,))


class OperatorLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token: Annotated[str, Field(min_length=1, max_length=512), PLAIN]


def _static(name: str) -> str:
    return files("bloghub.api").joinpath(f"static/{name}").read_text(encoding="utf-8")


async def page(request: Request) -> Response:
    """The dashboard; the sign-in page (401) without a valid token or session; a page that
    says how long to wait (429, ``Retry-After``) from an address locked after too many
    wrong tokens. A page, whatever the answer: a browser opened it."""
    try:
        await require_operator(request)
    except Unauthorized:
        return HTMLResponse(
            _static("ops-login.html"), status_code=401, headers={"content-security-policy": _CSP}
        )
    except RateLimited as refused:
        said = str(refused)
        said = said[:1].upper() + said[1:]
        return HTMLResponse(
            _static("ops-locked.html").replace("{message}", html.escape(said)),
            status_code=429,
            headers={"content-security-policy": _CSP, "retry-after": str(refused.retry_after_s)},
        )
    return HTMLResponse(_static("ops.html"), headers={"content-security-policy": _CSP})


async def login(request: Request) -> Response:
    body = await parse_body(request, OperatorLogin)
    await _count_attempt(request)
    # The wrong tokens of an address are one budget with the Bearer and cookie doors'
    # (``require_operator``): a lock on either holds on both, so trying one after the
    # other gains no guesses.
    checks, ip = container(request).operator_checks, client_key(client_ip(request))
    await checks.attempt(ip, "operator token tries")
    if not token_matches(request, body.token):
        await checks.failed(ip)
        security_event("ops.login_failed", ip=client_ip(request), user_id=None)
        raise Unauthorized("that is not the operator token")
    await checks.succeeded(ip)
    response = Response(status_code=204)
    settings = container(request).settings
    response.set_cookie(
        COOKIE,
        session_cookie(body.token),
        max_age=SESSION_S,
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=settings.mode is Mode.PRODUCTION,
    )
    return response


async def _count_attempt(request: Request) -> None:
    """Every attempt counts, per client address, before the token is looked at: past the
    limit even the right token waits, so guessing gains nothing by going fast."""
    c = container(request)
    key = f"ops-login:{client_key(client_ip(request))}"
    try:
        decision = await c.limiter.allow(key, c.settings.ops_login_per_minute, 60.0)
    except Unavailable:
        # The dashboard is needed most while Redis is down: counted in this process then.
        decision = c.ops_logins_local.allow(key)
    if not decision.allowed:
        raise RateLimited(
            "too many operator login attempts; try again later",
            retry_after_s=decision.retry_after_s,
        )


async def asset(request: Request) -> Response:
    return serve(request, _ASSETS.get(request.path_params["name"]))


async def lag(request: Request) -> Response:
    await require_operator(request)
    return JSON(await container(request).ops.snapshot())


class HistoryQuery(BaseModel):
    minutes: Annotated[
        float, Field(gt=0, le=24 * 60, description="how far back, in minutes (default 60)")
    ] = 60


async def history(request: Request) -> Response:
    await require_operator(request)
    minutes = parse_query(request, HistoryQuery).minutes
    ops = container(request).ops
    series = {}
    try:
        # The groups watched now, and those switched out (a replay's retired generation)
        # whose samples are still kept: their lines stay on the charts.
        watched = [w.group for w in await ops.watched()]
        sampled = await ops.history.groups_since(minutes * 60)
        for group in dict.fromkeys([*watched, *sampled]):
            samples = await ops.history.since(group, minutes * 60)
            series[group] = [
                {
                    "at": s["at"],
                    "lag": s["lag"],
                    "lag_seconds": s["lag_seconds"],
                    "applied": s["applied"],
                    "dead_letters": s["dead_letters"],
                }
                for s in samples
            ]
    except RedisError:
        # The history is kept in Redis alone: none to show, said so (the page goes on with
        # the live snapshots, which read the lag from Kafka meanwhile).
        return JSON({"series": {}, "redis_reachable": False})
    return JSON({"series": series, "redis_reachable": True})


async def stream(request: Request) -> Response:
    await require_operator(request)
    ops = container(request).ops
    every = container(request).settings.ops_sample_every_s

    async def events() -> AsyncIterator[bytes]:
        while not await request.is_disconnected():
            yield b"data: " + orjson.dumps(await ops.snapshot()) + b"\n\n"
            await asyncio.sleep(min(every, 2.0))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        # The operator's figures, like every answer to a credentialed request: never kept.
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


ENDPOINTS = [
    Endpoint(
        "GET",
        "/ops",
        page,
        "Operator dashboard (needs the operator token)",
        "ops",
        media_type="text/html",
        errors=(401, 429),
    ),
    Endpoint(
        "POST",
        "/ops/session",
        login,
        "Open an operator session (sets a cookie)",
        "ops",
        body=OperatorLogin,
        status=204,
        errors=(401, 415, 422, 429, 503),
    ),
    Endpoint(
        "GET",
        "/ops/static/{name}",
        asset,
        "Dashboard scripts and styles (uPlot)",
        "ops",
        media_type="text/plain",
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/ops/api/lag",
        lag,
        "Lag, state and throughput of every projector",
        "ops",
        auth=True,
        errors=(401, 429),
    ),
    Endpoint(
        "GET",
        "/ops/api/history",
        history,
        "Samples of the last minutes per group",
        "ops",
        auth=True,
        errors=(401, 422, 429),
        params=HistoryQuery,
    ),
    Endpoint(
        "GET",
        "/ops/api/stream",
        stream,
        "Live snapshots as server-sent events",
        "ops",
        media_type="text/event-stream",
        auth=True,
        errors=(401, 429),
    ),
    MIGRATION_PHASE,
]
