"""The ops monitor: samples every projector's consumer group into history, and answers the
dashboard's snapshot (state, lag, instances, generation, throughput, dead letters, replays,
migrations)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.migrations import Migration, all_migrations, shown_url
from bloghub.adapters.postgres.tables import generations
from bloghub.adapters.redis.presence import Presence
from bloghub.errors import Transient, Unavailable
from bloghub.events.topics import topic_for
from bloghub.logs import SELDOM
from bloghub.migration_phases import reads_from, writes
from bloghub.ops.dead_letter_view import DeadLetterView
from bloghub.ops.generations_admin import served_by_default
from bloghub.ops.history import History
from bloghub.ops.lag import GroupLag, LagReader
from bloghub.ops.replay_progress import read_progress
from bloghub.ops.states import Sample, State, absent, evaluate, waiting_state
from bloghub.projections.catalog import PROJECTOR_FAMILIES
from bloghub.projections.dead_letters import building_label, dlq_count_key
from bloghub.projections.heartbeat import read_heartbeats
from bloghub.projections.runner_config import group_id
from bloghub.projections.stats import applied_key, last_commit_key

log = structlog.get_logger(__name__)


# A ``built`` generation (``replay --no-swap``) is written by no one until it is activated
# or resumed: its lag, which grows, is what ``activate`` will have to catch up on.
WATCHED = ("active", "building", "built")


@dataclass(frozen=True, slots=True)
class Watched:
    name: str
    generation: int
    state: str  # active, building (a replay in progress) or built (waiting to be switched in)
    group: str
    topics: list[str]


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    prefix: str
    window_s: float


async def watched_groups(engine: AsyncEngine, prefix: str) -> list[Watched]:
    """Every projector generation that serves, is being built or was built to be switched
    in later, with its consumer group:
    a projector with no active generation registered serves generation 1, as the projector
    processes run it."""
    stmt = select(generations.c.projector, generations.c.generation, generations.c.state).where(
        generations.c.state.in_(WATCHED)
    )
    async with engine.connect() as conn:
        rows = list(await conn.execute(stmt))
    known: dict[str, dict[int, str]] = {name: {} for name in PROJECTOR_FAMILIES}
    for r in rows:
        if r.projector in known:
            known[r.projector][r.generation] = r.state
    return [
        Watched(
            name=name,
            generation=generation,
            state=state,
            group=group_id(prefix, name, generation),
            topics=[topic_for(prefix, f) for f in PROJECTOR_FAMILIES[name]],
        )
        for name in sorted(known)
        for generation, state in served_by_default(known[name]).items()
        if state in WATCHED
    ]


class OpsMonitor:
    def __init__(
        self,
        *,
        config: MonitorConfig,
        redis: Redis,
        engine: AsyncEngine,
        lag: LagReader,
        letters: DeadLetterView,
        history: History,
        presence: Presence | None = None,
    ) -> None:
        self._cfg = config
        self._presence = presence  # each API process's live clients
        self._redis = redis
        self._engine = engine
        self._lag = lag
        self._letters = letters
        self.history = history
        # The last answers the database gave: while it cannot be reached the dashboard goes
        # on from them (generations and migrations change seldom) and says so, rather than
        # going blind exactly when the projectors wait on the store.
        self._last_watched: list[Watched] | None = None
        self._last_migrations: list[dict[str, Any]] = []
        self.database_reachable = True

    async def watched(self) -> list[Watched]:
        try:
            async with translated():
                found = await watched_groups(self._engine, self._cfg.prefix)
        except (Unavailable, Transient):
            self.database_reachable = False
            if self._last_watched is None:
                raise
            return self._last_watched
        self._last_watched, self.database_reachable = found, True
        return found

    async def sample(self) -> None:
        """Observe every watched group once and append the observation to its history."""
        watched = await self.watched()
        if not watched:
            return
        lags = {g.group: g for g in await self._lag.read({w.group: w.topics for w in watched})}
        counters = await self._counters(watched)
        now = time.time()
        for w in watched:
            group_lag = lags.get(w.group)
            if group_lag is None:
                continue
            await self.history.add(w.group, _sample_json(now, group_lag, counters[w.group]))

    async def snapshot(self) -> dict[str, Any]:
        now = time.time()
        watched = await self.watched()
        try:
            projectors = [await self._describe(w, now) for w in watched]
            replays = await self._replays(watched, await self._published(watched))
            live = await self._presence.processes() if self._presence else []
            redis_reachable = True
        except (RedisError, Unavailable) as exc:
            # History, heartbeats, counters and progress live in Redis; the lag itself is
            # Kafka's to tell: the dashboard goes on from it and says what it lacks.
            if (left_out := SELDOM.due("ops.redis_unavailable")) is not None:
                log.warning("ops.redis_unavailable", error=repr(exc), left_out=left_out)
            projectors = await self.read_live(watched, now)
            replays = await self._replays(watched, {})
            live, redis_reachable = [], False
        counted = [p["dead_letters"] for p in projectors if p["serving"]]
        total = None if None in counted else sum(counted)
        return {
            "at": now,
            "window_s": self._cfg.window_s,
            "projectors": projectors,
            "dead_letters": {"total": total, "latest": await self._latest_letters()},
            "replays": replays,
            "migrations": await self._migrations(),
            "live": {"processes": live},
            # False: the database did not answer; generations and migrations are as it
            # last said.
            "database_reachable": self.database_reachable,
            # False: Redis did not answer; lag is read from Kafka now, and states, instances,
            # throughput and dead-letter counts are not known.
            "redis_reachable": redis_reachable,
        }

    async def read_live(self, watched: list[Watched], now: float) -> list[dict[str, Any]]:
        """Each watched group as Kafka tells its lag now, with no history: what the
        dashboard shows while Redis, where the rest is kept, does not answer. With Kafka out
        of reach too, the lag is not known (None): the rest of the page still answers."""
        try:
            read = await self._lag.read({w.group: w.topics for w in watched})
        except (KafkaError, OSError, TimeoutError, Unavailable) as exc:
            if (left_out := SELDOM.due("ops.kafka_unavailable")) is not None:
                log.warning("ops.kafka_unavailable", error=repr(exc), left_out=left_out)
            read = []
        lags = {g.group: g for g in read}
        out = []
        for w in watched:
            found = lags.get(w.group)
            out.append(
                {
                    "projector": w.name,
                    "generation": w.generation,
                    "serving": w.state == "active",
                    "group": w.group,
                    "state": (State.BUILT if w.state == "built" else State.UNKNOWN).value,
                    "waiting": [],
                    "instances": [],
                    "events_per_s": None,
                    "lag": found.lag if found else None,
                    "lag_seconds": found.lag_seconds if found else None,
                    "dead_letters": None,
                    "sampled_at": now if found else None,
                    "partitions": [p.to_json() for p in found.partitions] if found else [],
                }
            )
        return out

    async def _published(self, watched: list[Watched]) -> dict[tuple[str, int], Any]:
        building = [(w.name, w.generation) for w in watched if w.state == "building"]
        return await read_progress(self._redis, self._cfg.prefix, building)

    async def _replays(
        self, watched: list[Watched], published: Mapping[tuple[str, int], Any]
    ) -> list[dict[str, Any]]:
        """Generations being built, with the progress their replay publishes (figures
        None until it has, or while Redis, where it is published, does not answer)."""
        building = [(w.name, w.generation) for w in watched if w.state == "building"]
        out = []
        for name, generation in building:
            p = published.get((name, generation))
            out.append(
                {
                    "projector": name,
                    "generation": generation,
                    "state": p.state if p else "building",
                    "done": p.done if p else None,
                    "total": p.total if p else None,
                    "events_per_s": p.events_per_s if p else None,
                    "eta_s": p.eta_s if p else None,
                }
            )
        return out

    async def _migrations(self) -> list[dict[str, Any]]:
        """Read models being moved to another database (``bloghub migrate``): the phase,
        where reads come from and which stores are written, the target without its
        password."""
        try:
            async with translated(), self._engine.connect() as conn:
                found = await all_migrations(conn)
        except (Unavailable, Transient):
            self.database_reachable = False
            return self._last_migrations
        self._last_migrations = self._shown_migrations(found)
        return self._last_migrations

    @staticmethod
    def _shown_migrations(found: Mapping[str, Migration]) -> list[dict[str, Any]]:
        return [
            {
                "projector": m.projector,
                "generation": m.generation,
                "phase": int(m.phase),
                "phase_name": m.phase.name.lower().replace("_", " "),
                "reads_from": reads_from(m.phase).value,
                "writes": [store.value for store in writes(m.phase)],
                "target": shown_url(m.target_url),
            }
            for m in sorted(found.values(), key=lambda m: m.projector)
        ]

    async def _describe(self, w: Watched, now: float) -> dict[str, Any]:
        recent = await self.history.since(w.group, max(self._cfg.window_s, 30.0))
        latest = recent[-1] if recent else None
        samples = [_sample(s) for s in recent]
        instances = await self._instances(w)
        waiting = [wait for i in instances for wait in i["waiting"]]
        if w.state == "built":
            state = State.BUILT  # no one writes it until activated: a lag that grows is no stop
        else:
            state = waiting_state(wait["reason"] for wait in waiting) or evaluate(
                samples,
                now=now,
                window_s=self._cfg.window_s,
                first_seen=await self.history.first_seen(w.group),
            )
            state = absent(state, instances=len(instances), lag=latest["lag"] if latest else None)
        return {
            "projector": w.name,
            "generation": w.generation,
            "serving": w.state == "active",
            "group": w.group,
            "state": state.value,
            "waiting": waiting,
            "instances": instances,
            "events_per_s": _rate(recent),
            "lag": latest["lag"] if latest else None,
            "lag_seconds": latest["lag_seconds"] if latest else None,
            "dead_letters": latest["dead_letters"] if latest else 0,
            "sampled_at": latest["at"] if latest else None,
            "partitions": latest["partitions"] if latest else [],
        }

    async def _instances(self, w: Watched) -> list[dict[str, Any]]:
        return [
            {
                "host": info.get("host"),
                "pid": info.get("pid"),
                "applied": info.get("applied"),
                "seen_s_ago": now_minus(info),
                "waiting": info.get("waiting", []),
            }
            for info in await read_heartbeats(self._redis, self._cfg.prefix, w.name)
            if info.get("generation") == w.generation
        ]

    async def _counters(self, watched: list[Watched]) -> dict[str, dict[str, float | None]]:
        prefix = self._cfg.prefix
        keys = []
        for w in watched:
            # A replay's dead letters are counted apart from the serving generation's.
            building = w.state in ("building", "built")
            label = building_label(w.name, w.generation) if building else w.name
            keys += [
                dlq_count_key(prefix, label),
                last_commit_key(prefix, w.group),
                applied_key(prefix, w.group),
            ]
        values = await self._redis.mget(keys)
        out: dict[str, dict[str, float | None]] = {}
        for i, w in enumerate(watched):
            dead, last, applied = values[3 * i : 3 * i + 3]
            out[w.group] = {
                "dead_letters": float(dead or 0),
                "last_commit_at": float(last) if last is not None else None,
                "applied": float(applied or 0),
            }
        return out

    async def _latest_letters(self) -> list[dict[str, Any]]:
        try:
            return await asyncio.wait_for(self._letters.latest(), timeout=3)
        except Exception as exc:  # Kafka down or readers not connected yet: show none
            if (left_out := SELDOM.due("ops.dead_letters_unavailable")) is not None:
                log.info("ops.dead_letters_unavailable", error=repr(exc), left_out=left_out)
            return []


def now_minus(info: dict[str, Any]) -> float | None:
    at = info.get("at")
    return round(time.time() - float(at), 1) if at is not None else None


def _sample_json(now: float, lag: GroupLag, counters: dict[str, float | None]) -> dict[str, Any]:
    return {
        "at": now,
        "lag": lag.lag,
        "lag_seconds": lag.lag_seconds,
        "committed": {
            f"{p.topic}|{p.partition}": p.committed
            for p in lag.partitions
            if p.committed is not None
        },
        "partitions": [p.to_json() for p in lag.partitions],
        "dead_letters": int(counters["dead_letters"] or 0),
        "last_commit_at": counters["last_commit_at"],
        "applied": int(counters["applied"] or 0),
    }


def _sample(raw: dict[str, Any]) -> Sample:
    return Sample(
        at=raw["at"],
        lag=raw["lag"],
        committed=raw["committed"],
        dead_letters=raw["dead_letters"],
        last_commit_at=raw["last_commit_at"],
    )


def _rate(recent: list[dict[str, Any]]) -> float | None:
    if len(recent) < 2:
        return None
    a, b = recent[-2], recent[-1]
    span = b["at"] - a["at"]
    return round(max(0, b["applied"] - a["applied"]) / span, 1) if span > 0 else None


async def sample_forever(
    monitor: OpsMonitor, redis: Redis, *, prefix: str, every_s: float, stop: asyncio.Event
) -> None:
    """Sample on a fixed beat; with several API processes only one samples each beat."""
    lock = f"{prefix}:ops:sampler"
    while not stop.is_set():
        try:
            if await redis.set(lock, b"1", nx=True, px=max(100, int(every_s * 900))):
                await monitor.sample()
        except (RedisError, OSError, TimeoutError) as exc:
            if (left_out := SELDOM.due("ops.sample_failed")) is not None:
                log.warning("ops.sample_failed", error=repr(exc), left_out=left_out)
        except Exception as exc:  # the dashboard must not take the API down with it
            log.exception("ops.sample_crashed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
