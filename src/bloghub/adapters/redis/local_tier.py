"""The in-process tier in front of the Redis cache: encoded response bodies, served without
a round trip, dropped when a projector changes an entry they were built from.

Each body is kept with the Redis entries it was built from and the invalidation counter
each had when it was read (``Cache.lookup``). Every fence and lift bumps an entry's counter
and publishes ``[key, counter]`` on the deployment's channel; each API process drops the
bodies built from an older counter of that key. A message is compared by counter, so one
that arrives late (after a body built from a newer counter was kept) drops nothing fresh,
and a body whose build began before a message for one of its keys arrived is not kept
(``Build``), however the two interleave.

The tier is only trusted while its subscription is: until the channel is subscribed, and
after it breaks, the tier is emptied and neither serves nor keeps anything. Entries also
expire after ``ttl_s``, and the tier is bounded by entries and bytes (least recently used
first out)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

RECENT = 4096  # messages remembered for builds in flight


def channel(prefix: str) -> str:
    return f"{prefix}:cache:changes"


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes
    deps: tuple[tuple[str, int], ...]
    expires: float


@dataclass(frozen=True, slots=True)
class Build:
    """Where the message stream stood when a body's first read began."""

    seq: int


class LocalTier:
    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._by_dep: dict[str, set[str]] = {}
        self._bytes = 0
        self._seq = 0  # messages applied so far
        self._recent: deque[tuple[int, str, int]] = deque(maxlen=RECENT)
        self.live = False  # set while the invalidation channel is subscribed

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> bytes | None:
        if not self.live:
            return None
        entry = self._entries.get(name)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(name)
            return None
        self._entries.move_to_end(name)
        return entry.body

    def begin(self) -> Build:
        return Build(self._seq)

    def put(self, name: str, body: bytes, deps: Mapping[str, int], build: Build) -> bool:
        """Keep ``body`` unless a message since ``build`` began changed one of ``deps``
        past the counter it was read at (or the messages since then are no longer known)."""
        if not (self.live and self.enabled) or len(body) > self.max_bytes:
            return False
        if self._seq - build.seq > len(self._recent):
            return False
        for seq, key, counter in reversed(self._recent):
            if seq <= build.seq:
                break
            if key in deps and counter > deps[key]:
                return False
        self._drop(name)
        entry = Entry(body, tuple(deps.items()), self._clock() + self.ttl_s)
        self._entries[name] = entry
        self._bytes += len(body)
        for key in deps:
            self._by_dep.setdefault(key, set()).add(name)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return True

    def changed(self, key: str, counter: int) -> None:
        """A projector bumped ``key``'s counter to ``counter``: drop what was built before."""
        self._seq += 1
        self._recent.append((self._seq, key, counter))
        for name in list(self._by_dep.get(key, ())):
            entry = self._entries.get(name)
            if entry is not None and any(k == key and v < counter for k, v in entry.deps):
                self._drop(name)

    def clear(self) -> None:
        self._entries.clear()
        self._by_dep.clear()
        self._bytes = 0
        # Builds in flight cannot know what they missed: make every one of them stale.
        self._seq += RECENT + 1

    def _drop(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        self._bytes -= len(entry.body)
        for key, _ in entry.deps:
            names = self._by_dep.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_dep[key]


def apply_message(tier: LocalTier, data: bytes | str) -> None:
    try:
        changes = orjson.loads(data)
    except orjson.JSONDecodeError:
        log.warning("local_tier.bad_message")
        return
    for key, counter in changes:
        tier.changed(str(key), int(counter))


async def follow_changes(tier: LocalTier, redis: Redis, prefix: str, stop: asyncio.Event) -> None:
    """Keep ``tier`` subscribed to the invalidation channel until ``stop``; while not
    subscribed the tier is empty and off."""
    if not tier.enabled:
        return
    delay = 0.2
    while not stop.is_set():
        try:
            await _subscribed(tier, redis, prefix, stop)
            delay = 0.2
        except (RedisError, OSError) as exc:
            log.warning("local_tier.unsubscribed", error=repr(exc))
        finally:
            tier.live = False
            tier.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, 5.0)


async def _subscribed(tier: LocalTier, redis: Redis, prefix: str, stop: asyncio.Event) -> None:
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(channel(prefix))
        while not stop.is_set():
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] == "subscribe":
                # Only now are changes delivered: what was kept before may have missed some.
                tier.clear()
                tier.live = True
            elif message["type"] == "message":
                apply_message(tier, message["data"])
