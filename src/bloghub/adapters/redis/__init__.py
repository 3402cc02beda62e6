"""Redis: client construction and the small stores built on it."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.connection import Connection, parse_url

from bloghub.adapters.redis.reach import guarded


def make_redis(url: str) -> Redis:
    """A client whose calls to a server out of reach fail at once once one of them has
    timed out or could not connect (adapters/redis/reach.py)."""
    kind = parse_url(url).get("connection_class", Connection)
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        connection_class=guarded(kind),
    )
