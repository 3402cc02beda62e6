"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import JSON, Endpoint, container


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    c = container(request)

    async def postgres() -> bool:
        try:
            async with asyncio.timeout(1.0), c.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def redis() -> bool:
        try:
            async with asyncio.timeout(1.0):
                return bool(await c.redis.ping())
        except Exception:
            return False

    kafka, pg, rd = await asyncio.gather(c.event_log.ping(), postgres(), redis())
    checks = {"kafka": kafka, "postgres": pg, "redis": rd}
    ready = all(checks.values())
    return JSON(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


ENDPOINTS = [
    Endpoint("GET", "/healthz", healthz, "The process is alive", "ops"),
    Endpoint(
        "GET", "/readyz", readyz, "Kafka, Postgres and Redis all answer", "ops", errors=(503,)
    ),
]
