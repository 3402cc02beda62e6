"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from bloghub.api.http import JSON, Endpoint, container
from bloghub.projections.heartbeat import read_heartbeats


class Alive(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """Answered with 200 when ready and 503 when not: the same body either way."""

    status: Literal["ready", "not ready"]
    checks: dict[str, bool]
    degraded: list[str]
    # Each: the projector, its generation, and why it waits (``kind``, ``reason``...).
    waiting: list[dict[str, Any]]


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

    async def waiting() -> list[dict[str, Any]]:
        # Said, not failed on: this process serves well while a projector waits, and
        # taking every API process out of service would turn a lag into an outage.
        try:
            async with asyncio.timeout(1.0):
                beats = await read_heartbeats(c.redis, c.settings.prefix)
        except Exception:
            return []
        # Where and why, not the error's own text (hosts, tables, event contents): this
        # answers anyone; operators read it whole on the ops dashboard.
        return [
            {"projector": beat.get("projector"), "generation": beat.get("generation")}
            | {k: v for k, v in wait.items() if k != "detail"}
            for beat in beats
            for wait in beat.get("waiting", [])
        ]

    async def opensearch() -> bool:
        try:
            async with asyncio.timeout(1.0):
                return bool(await c.search.ping())
        except Exception:
            return False

    kafka, pg, rd, search, waits = await asyncio.gather(
        c.event_log.ping(), postgres(), redis(), opensearch(), waiting()
    )
    checks = {"kafka": kafka, "postgres": pg, "redis": rd}
    ready = all(checks.values())
    # Said, not failed on, as for waiting projectors: without OpenSearch only search
    # answers 503; every other route serves, so the process stays in service.
    degraded = [] if search else ["opensearch"]
    return JSON(
        {
            "status": "ready" if ready else "not ready",
            "checks": {**checks, "opensearch": search},
            "degraded": degraded,
            "waiting": waits,
        },
        status_code=200 if ready else 503,
    )


ENDPOINTS = [
    Endpoint("GET", "/healthz", healthz, "The process is alive", "ops", response=Alive),
    Endpoint(
        "GET",
        "/readyz",
        readyz,
        "Kafka, Postgres and Redis all answer (200; 503 with the same body, naming the one "
        "that does not); OpenSearch's state (only search needs it); projectors that wait, "
        "and why",
        "ops",
        response=Readiness,
        also=(503,),
    ),
]
