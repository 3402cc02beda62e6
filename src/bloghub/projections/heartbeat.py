"""Heartbeats: each running projector instance keeps a Redis key alive with a TTL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError


def heartbeat_pattern(prefix: str, projector: str = "*") -> str:
    return f"{prefix}:hb:{projector}:*"


class Heartbeat:
    def __init__(
        self, redis: Redis, *, prefix: str, projector: str, generation: int, ttl_s: int
    ) -> None:
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._key = f"{prefix}:hb:{projector}:{self.instance}"
        self._redis = redis
        self._ttl = ttl_s
        self._info = {
            "projector": projector,
            "generation": generation,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.time(),
        }
        self.applied = 0

    async def beat(self) -> None:
        info = {**self._info, "applied": self.applied, "at": time.time()}
        await self._redis.set(self._key, orjson.dumps(info), ex=self._ttl)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # A missed beat shows as a dead instance, which is the truth.
            with contextlib.suppress(RedisError):
                await self.beat()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._ttl / 3)
            except TimeoutError:
                continue
        await self._redis.delete(self._key)
