"""Heartbeats: each running projector instance keeps a Redis key alive with a TTL, saying
how much it applied and what it waits for, if anything."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from enum import StrEnum
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bloghub.projections.backoff import wait_any


class WaitReason(StrEnum):
    STORE = "store"  # the store is unwell, or every event tried fails the same way
    CODE = "code"  # an event newer than this code: it waits for an upgrade


def heartbeat_index(prefix: str) -> str:
    """A sorted set of every instance's heartbeat key, scored by when it expires: readers
    find the live ones without SCAN, which walks the whole keyspace (caches, sessions…)
    whatever the pattern, and slowed the dashboard and /readyz as Redis filled."""
    return f"{prefix}:hb:index"


async def read_heartbeats(redis: Redis, prefix: str, projector: str = "*") -> list[dict[str, Any]]:
    """The live instances' heartbeats (of every projector unless one is named)."""
    index = heartbeat_index(prefix)
    # An instance that died without deleting its key has expired in Redis; its score says
    # so, and the index forgets it here.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(index, "-inf", time.time())
        pipe.zrange(index, 0, -1)
        _, members = await pipe.execute()
    keys: list[bytes] = list(members)
    if projector != "*":
        own = f"{prefix}:hb:{projector}:".encode()
        keys = [k for k in keys if k.startswith(own)]
    if not keys:
        return []
    return [orjson.loads(raw) for raw in await redis.mget(keys) if raw is not None]


class Heartbeat:
    def __init__(
        self, redis: Redis, *, prefix: str, projector: str, generation: int, ttl_s: int
    ) -> None:
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self._key = f"{prefix}:hb:{projector}:{self.instance}"
        self._index = heartbeat_index(prefix)
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
        self._waiting: dict[str, dict[str, Any]] = {}
        self._changed = asyncio.Event()

    def wait(self, where: str, reason: WaitReason, detail: str) -> None:
        """Say that ``where`` (a partition, the store, the assignment) waits, and why."""
        since = self._waiting.get(where, {}).get("since", time.time())
        self._waiting[where] = {
            "where": where,
            "reason": reason.value,
            "detail": detail[:500],
            "since": since,
        }
        self._changed.set()

    def waiting_on(self) -> list[str]:
        return list(self._waiting)

    def resume(self, where: str) -> None:
        if self._waiting.pop(where, None) is not None:
            self._changed.set()

    async def beat(self) -> None:
        info = {
            **self._info,
            "applied": self.applied,
            "at": time.time(),
            "waiting": list(self._waiting.values()),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key, orjson.dumps(info), ex=self._ttl)
            pipe.zadd(self._index, {self._key: time.time() + self._ttl})
            await pipe.execute()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._changed.clear()
            # A missed beat shows as a dead instance, which is the truth.
            with contextlib.suppress(RedisError):
                await self.beat()
            # A new wait is told at once, not at the next beat.
            await wait_any(self._ttl / 3, self._changed, stop)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key)
            pipe.zrem(self._index, self._key)
            await pipe.execute()
