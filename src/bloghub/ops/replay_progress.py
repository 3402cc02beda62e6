"""How far a replay has come: measured from the log's ends and the generation's own
checkpoints, published to Redis for the ops dashboard and ``bloghub replay --status``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import orjson
from redis.asyncio import Redis

from bloghub.projections.port import TP

# A published progress outlives a few missed beats, not a dead replay.
PROGRESS_TTL_S = 30


def progress_key(prefix: str, projector: str, generation: int) -> str:
    return f"{prefix}:replay:{projector}:g{generation}"


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    """One replay's figures, under the field names the dashboard renders."""

    projector: str
    generation: int
    state: str  # building | caught_up | switched | built | failed
    done: int
    total: int
    events_per_s: float | None
    eta_s: float | None
    at: float = field(default_factory=time.time)

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def applied_of(checkpoints: Mapping[TP, int], ends: Mapping[TP, int]) -> tuple[int, int]:
    """(done, total): events applied and events in the log, over the projector's partitions.
    The log keeps everything from offset 0, so a checkpoint is the count of what it passed."""
    total = sum(ends.values())
    done = sum(min(checkpoints.get(tp, 0), end) for tp, end in ends.items())
    return done, total


class RateMeter:
    """Events per second, smoothed over the last beats, and the time left at that rate."""

    def __init__(self, *, weight: float = 0.3) -> None:
        self._weight = weight
        self._last: tuple[float, int] | None = None
        self.rate: float | None = None

    def observe(self, done: int, now: float) -> None:
        if self._last is not None and now > self._last[0]:
            current = max(0, done - self._last[1]) / (now - self._last[0])
            w = self._weight
            self.rate = current if self.rate is None else w * current + (1 - w) * self.rate
        self._last = (now, done)

    def eta(self, left: int) -> float | None:
        if left <= 0:
            return 0.0
        if not self.rate:
            return None
        return round(left / self.rate, 1)


def measured(
    projector: str, generation: int, state: str, done: int, total: int, meter: RateMeter
) -> ReplayProgress:
    now = time.time()
    meter.observe(done, now)
    rate = round(meter.rate, 1) if meter.rate is not None else None
    return ReplayProgress(
        projector, generation, state, done, total, rate, meter.eta(total - done), now
    )


async def publish(redis: Redis, prefix: str, progress: ReplayProgress) -> None:
    await redis.set(
        progress_key(prefix, progress.projector, progress.generation),
        orjson.dumps(progress.to_json()),
        ex=PROGRESS_TTL_S,
    )


async def read_progress(
    redis: Redis, prefix: str, generations: list[tuple[str, int]]
) -> dict[tuple[str, int], ReplayProgress]:
    """The latest published progress of each (projector, generation) that has one."""
    if not generations:
        return {}
    raw = await redis.mget([progress_key(prefix, n, g) for n, g in generations])
    out = {}
    for (name, gen), value in zip(generations, raw, strict=True):
        if value is not None:
            out[(name, gen)] = ReplayProgress(**orjson.loads(value))
    return out


def with_state(progress: ReplayProgress, state: str) -> ReplayProgress:
    return replace(progress, state=state, at=time.time())
