"""Hot reads: encoded bodies from this process's tier (``LocalTier``) when it holds them, else
built through the Redis cache and kept in the tier with the counters of the entries they
were built from. A read that had to catch up with a position skips both tiers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request

from bloghub.api.http import container


async def hot_json(
    request: Request, name: str, build: Callable[[], Awaitable[Any]]
) -> bytes | None:
    """The body named ``name`` encoded as JSON, or ``None`` when ``build`` finds nothing."""
    tier = container(request).hot
    if getattr(request.state, "caught_up", False) or not tier.enabled:
        value = await build()
        return None if value is None else orjson.dumps(value)
    body = tier.get(name)
    if body is not None:
        return body
    started = tier.begin()
    counters: dict[str, int | None] = {}
    request.state.cache_counters = counters
    value = await build()
    if value is None:
        return None
    body = orjson.dumps(value)
    known = {k: v for k, v in counters.items() if v is not None}
    if known and len(known) == len(counters):
        tier.put(name, body, known, started)
    return body
