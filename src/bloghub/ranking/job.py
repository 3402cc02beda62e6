"""The ranking job: every period, the one holder of the ranking lock streams the window's
candidates through a bounded heap, dresses the top entries with their details and writes
them to Redis under its fencing token; it pre-caches the first entries' published details.

It runs beside the projectors (``bloghub project`` with no names, which ``bloghub run``
starts) and alone as ``bloghub rank``; any number of instances may run, one computes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine, translated
from bloghub.adapters.postgres.engines import Engines
from bloghub.adapters.postgres.generations import active_generations, schema_name
from bloghub.adapters.postgres.migrations import Migration, all_migrations, moved_reads
from bloghub.adapters.postgres.tables import generations
from bloghub.adapters.redis.cache import Cache
from bloghub.errors import SchemaBehind, Transient, Unavailable
from bloghub.ranking.candidates import candidates
from bloghub.ranking.entries import authors, comments_under, entry, published_views
from bloghub.ranking.lock import RENEW_SHARE, STANDBY_SHARE, RankingKeys, RankingLock
from bloghub.ranking.score import Scored, TopN, Weights, score
from bloghub.readmodels import PUBLISHED_TTL_S, published_key
from bloghub.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Read models the ranking reads: while one of them is rebuilt beside the live generation,
# nothing is pre-cached (a switch may follow at any moment; what it serves is its own).
READS = ("interactions", "articles", "users")


class LockLost(Exception):
    """The lock ran out or passed to another holder while this one was working."""


@dataclass(frozen=True, slots=True)
class RankingConfig:
    weights: Weights
    top_n: int
    window: timedelta
    every_s: float
    lock_ttl_s: float
    page_rows: int
    precache: int

    @classmethod
    def from_settings(cls, s: Settings) -> RankingConfig:
        return cls(
            weights=Weights(collect=s.ranking_collect_weight, gravity=s.ranking_gravity),
            top_n=s.ranking_top_n,
            window=timedelta(days=s.ranking_window_days),
            every_s=s.ranking_every_s,
            lock_ttl_s=s.ranking_lock_ttl_s,
            page_rows=s.ranking_page_rows,
            precache=s.ranking_precache,
        )


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RankingJob:
    def __init__(
        self,
        config: RankingConfig,
        *,
        engine: AsyncEngine,
        redis: Redis,
        cache: Cache | None,
        prefix: str,
        holder: str | None = None,
        where: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """``where``: for each store ("Redis", "PostgreSQL"), what a wait for it logs of
        where it is looked for (``cli_errors.where``)."""
        self.config = config
        self._where = where or {}
        self._standing_by = False
        self._engine = engine
        # The databases migrations moved read models to (``bloghub migrate``).
        self.engines = Engines(lambda url: make_engine(url, pool_size=2, app="bloghub-ranking"))
        self.redis = redis
        self.cache = cache
        self.keys = RankingKeys(prefix)
        self.lock = RankingLock(
            redis, self.keys, ttl_s=config.lock_ttl_s, holder=holder or holder_name()
        )

    async def compute(self, now: datetime) -> list[dict[str, Any]] | None:
        """The ranked entries as of ``now``; None while the counters have no generation."""
        active, moved = await self._placements()
        if "interactions" not in active:
            log.info("ranking.no_counters_yet")
            return None
        kept = TopN(self.config.top_n)
        stream = candidates(
            self._store(active, moved, "interactions"),
            schema_name("interactions", active["interactions"]),
            since=now - self.config.window,
            page_rows=self.config.page_rows,
        )
        async for c in stream:
            kept.offer(Scored(c, score(c, now, self.config.weights)))
        ranked = kept.best_first()
        ids = [r.candidate.article_id for r in ranked]
        views = await published_views(
            self._store(active, moved, "articles"), active.get("articles", 1), ids
        )
        people = await authors(
            self._store(active, moved, "users"),
            active.get("users"),
            [r.candidate.author_id for r in ranked],
        )
        comments = await comments_under(
            self._store(active, moved, "comments"), active.get("comments"), ids
        )
        # An article the counters still show but the articles model no longer publishes
        # (withdrawn, the counters' projector not there yet) is left out, never shown.
        return [
            entry(
                r,
                views[a],
                people.get(r.candidate.author_id),
                comments.get(a, 0),
            )
            for r in ranked
            if (a := r.candidate.article_id) in views
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Hold or wait for the lock, compute when a period is due, until ``stop``."""
        log.info("ranking.started", holder=self.lock.holder, every_s=self.config.every_s)
        try:
            while not stop.is_set():
                pause = await self._beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self.lock.release()

    async def _beat(self) -> float:
        """One turn: the seconds until the next."""
        ttl = self.config.lock_ttl_s
        try:
            if not await self.lock.hold():
                if not self._standing_by:  # said once each time it starts to stand by
                    log.info("ranking.standing_by", why="another process holds the lock")
                self._standing_by = True
                return ttl * STANDBY_SHARE
            self._standing_by = False
            due = await self._due_in()
            if due <= 0:
                await self.run_once()
                due = self.config.every_s
            return min(due, ttl * RENEW_SHARE)
        except (RedisError, OSError) as exc:
            where = self._where.get("Redis", {})
            log.warning("ranking.redis_unavailable", error=repr(exc), **where)
        except (Transient, Unavailable, SchemaBehind) as exc:
            where = self._where.get("PostgreSQL", {})
            log.warning("ranking.database_unavailable", error=repr(exc), **where)
        except LockLost:
            log.warning("ranking.lock_lost", holder=self.lock.holder)
        return ttl * STANDBY_SHARE

    async def run_once(self) -> int:
        """Compute and publish under the lock held now, renewing it meanwhile; the new
        version (0: nothing to rank from yet). Raises ``LockLost`` if the lock went."""
        started = time.time()
        entries = await self._renewing(self.compute(datetime.fromtimestamp(started, UTC)))
        if entries is None:
            return 0
        version = await self.lock.publish(orjson.dumps(entries), started)
        if version == 0:
            raise LockLost()
        log.info(
            "ranking.published", version=version, entries=len(entries), holder=self.lock.holder
        )
        await self._precache([e["id"] for e in entries[: self.config.precache]])
        return version

    async def _renewing(self, work: Awaitable[T]) -> T:
        """``work``'s result, renewing the lock every third of its TTL while it runs; a
        renewal that fails cancels the work (its result could not be written anyway)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait([task], timeout=self.config.lock_ttl_s * RENEW_SHARE)
                if done:
                    return task.result()
                try:
                    held = await self.lock.hold()
                except (RedisError, OSError) as exc:
                    raise LockLost() from exc
                if not held:
                    raise LockLost()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _due_in(self) -> float:
        """Seconds until the next run is due, from the last result's own time (whoever
        wrote it), so a new holder keeps the period rather than starting one afresh."""
        raw = await self.redis.hget(self.keys.result, "computed_at")
        if raw is None:
            return 0.0
        return float(raw) + self.config.every_s - time.time()

    async def _placements(self) -> tuple[dict[str, int], dict[str, Migration]]:
        async with translated(), self._engine.connect() as conn:
            placed = await active_generations(conn), await all_migrations(conn)
        await self.engines.keep({m.target_url for m in placed[1].values()})
        return placed

    def _store(
        self, active: dict[str, int], moved: dict[str, Migration], projector: str
    ) -> AsyncEngine:
        url = moved_reads(moved, active, projector)
        return self._engine if url is None else self.engines.get(url)

    async def _rebuilding(self) -> bool:
        g = generations.c
        stmt = select(g.projector).where(g.state == "building", g.projector.in_(READS))
        async with translated(), self._engine.connect() as conn:
            return (await conn.execute(stmt.limit(1))).first() is not None

    async def _precache(self, ids: list[str]) -> None:
        """The first entries' published details into the cache the articles projector
        owns, under its fill rule (a copy read before an invalidation is kept out)."""
        cache = self.cache
        if cache is None or not ids or await self._rebuilding():
            return
        active, moved = await self._placements()
        generation = active.get("articles", 1)
        engine = self._store(active, moved, "articles")
        keys = {published_key(cache, i): i for i in ids}

        async def load() -> dict[str, Any]:
            views = await published_views(engine, generation, ids)
            return {k: views.get(i) for k, i in keys.items()}

        await cache.warm(keys, PUBLISHED_TTL_S, load)


async def run_ranking(settings: Settings, stop: asyncio.Event) -> None:
    """The job with clients of its own, until ``stop`` (``bloghub rank``, and beside the
    projectors in ``bloghub project``)."""
    from bloghub.adapters.redis import make_redis
    from bloghub.cli_errors import where

    engine = make_engine(settings.sqlalchemy_url, pool_size=2, app="bloghub-ranking")
    redis = make_redis(settings.redis_url.get_secret_value())
    job = RankingJob(
        RankingConfig.from_settings(settings),
        engine=engine,
        redis=redis,
        cache=Cache(redis, prefix=settings.prefix, enabled=settings.cache_enabled),
        prefix=settings.prefix,
        where={service: where(service, settings) for service in ("Redis", "PostgreSQL")},
    )
    try:
        await job.run(stop)
    finally:
        await redis.aclose()
        await engine.dispose()
        await job.engines.dispose()
