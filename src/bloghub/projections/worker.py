"""Runs projectors in one process until told to stop; drains on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping, Sequence

import structlog
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

import bloghub.events.catalog  # noqa: F401  (registers every event type)
from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.generations import active_generations
from bloghub.adapters.postgres.migrations import Migration, all_migrations
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.cache import Cache
from bloghub.cli_errors import where
from bloghub.errors import Transient, Unavailable
from bloghub.events.base import registry
from bloghub.heap import settle_heap as settle_heap  # where workers have found it
from bloghub.projections.backoff import Backoff, Stopping
from bloghub.projections.catalog import PROJECTORS
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.heartbeat import Heartbeat
from bloghub.projections.migration_sinks import placed_projector
from bloghub.projections.port import Projector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig, group_id
from bloghub.projections.stats import CommitStats
from bloghub.projections.stores import Stores
from bloghub.settings import Settings

log = structlog.get_logger(__name__)


class UnknownProjector(ValueError):
    pass


async def run_projectors(settings: Settings, names: Sequence[str], stop: asyncio.Event) -> None:
    names = list(names) or list(PROJECTORS)
    unknown = [n for n in names if n not in PROJECTORS]
    if unknown:
        raise UnknownProjector(
            f"unknown projector(s): {', '.join(map(repr, unknown))}; known: {', '.join(PROJECTORS)}"
        )
    engine = projector_engine(
        settings.sqlalchemy_url,
        pool_size=(settings.apply_concurrency + 1) * len(names),
        statement_timeout_s=settings.projector_statement_timeout_s,
    )
    redis = make_redis(settings.redis_url.get_secret_value())
    search = make_opensearch(settings.opensearch_url)
    stores = Stores(
        settings=settings,
        engine=engine,
        redis=redis,
        search=search,
        cache=Cache(redis, prefix=settings.prefix),
    )
    dead = DeadLetters.from_settings(settings, redis)
    tasks = []
    try:
        try:
            # At start-up the operator may have named the wrong address: each wait says
            # where it looks, and which setting names it.
            await _dead_letters_started(dead, stop, where("Kafka", settings))
            await _active_generations(engine, stop, where("PostgreSQL", settings))
        except Stopping:
            return  # told to stop while Kafka or the database was still out of reach
        tasks = [
            asyncio.create_task(_follow(stores, dead, name, stop), name=f"follow:{name}")
            for name in names
        ]
        await _until_stop_or_failure(tasks, stop)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await dead.close()
        await redis.aclose()
        await search.close()
        await engine.dispose()


async def _follow(stores: Stores, dead: DeadLetters, name: str, stop: asyncio.Event) -> None:
    """Run ``name`` on its active generation; when another is switched in (a replay), run
    that one too, without a restart of the process, and drain the old one once no request
    can still wait on it: a request pinned to the old generation before the switch waits
    (``read_wait_s``) for its position there, so that one must keep moving meanwhile."""
    settings = stores.settings
    grace_s = settings.read_wait_s + settings.generations_poll_s
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    try:
        while not stop.is_set():
            try:
                placement = await _placement(stores, name, stop)
            except Stopping:
                return
            generation, migration = placement
            own_stop = asyncio.Event()
            task = asyncio.create_task(
                run_generation(stores, dead, name, generation, own_stop, migration)
            )
            running = [(s, t) for s, t in running if not t.done()] + [(own_stop, task)]
            switched = asyncio.Event()
            watch = asyncio.create_task(_until_switched(stores, name, placement, stop, switched))
            try:
                await _until_stop_or_failure([task], switched)
            finally:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            if stop.is_set():
                continue
            try:
                now = await _placement(stores, name, stop)
            except Stopping:
                return
            if now[0] == generation:
                # A migration changed phase: the same generation and consumer group, now
                # written to other stores. Adjacent phases both write the store either
                # reads (migration_phases.py), so the old runner may stop at once.
                log.info("projector.migration_phase", projector=name, now=_phase_of(now))
                own_stop.set()
                await asyncio.gather(task, return_exceptions=True)
                continue
            log.info("projector.generation_switched", projector=name, left=generation)
            asyncio.get_running_loop().call_later(grace_s, own_stop.set)
    finally:
        for own_stop, _ in running:
            own_stop.set()
        await asyncio.gather(*(t for _, t in running), return_exceptions=True)


async def _until_switched(
    stores: Stores, name: str, placement: Placement, stop: asyncio.Event, switched: asyncio.Event
) -> None:
    """Set ``switched`` once ``name``'s active generation or migration phase is no longer
    ``placement`` (or the process stops); the registries are read every
    ``generations_poll_s``."""
    every = stores.settings.generations_poll_s
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        if stop.is_set():
            break
        try:
            now = await _placement(stores, name, stop)
        except Stopping:
            break
        if now != placement:
            break
    switched.set()


def generation_tasks(
    stores: Stores,
    dead: DeadLetters,
    name: str,
    generation: int,
    stop: asyncio.Event,
    *,
    label: str = "projector",
    projector: Projector | None = None,
) -> list[asyncio.Task[None]]:
    """The tasks that run one projector generation: its runner and its heartbeat. The
    projector is built from ``stores`` unless given (a migration's, placed by phase)."""
    settings, redis = stores.settings, stores.redis
    if projector is None:
        projector = PROJECTORS[name].from_stores(stores, generation=generation)
    beat = Heartbeat(
        redis,
        prefix=settings.prefix,
        projector=name,
        generation=generation,
        ttl_s=settings.heartbeat_ttl_s,
    )
    stats = CommitStats(
        redis, prefix=settings.prefix, group=group_id(settings.prefix, name, generation)
    )
    runner = ProjectorRunner(
        projector,
        config=RunnerConfig.from_settings(settings),
        registry=registry,
        dead_letters=dead,
        heartbeat=beat,
        stats=stats,
    )
    return [
        asyncio.create_task(runner.run(stop), name=f"{label}:{name}:g{generation}"),
        asyncio.create_task(beat.run(stop), name=f"{label}-heartbeat:{name}:g{generation}"),
    ]


async def run_generation(
    stores: Stores,
    dead: DeadLetters,
    name: str,
    generation: int,
    stop: asyncio.Event,
    migration: Migration | None = None,
) -> None:
    """One projector generation with its heartbeat and commit figures, until ``stop``;
    written to the stores its migration's phase names, if it is being migrated."""
    target = None
    projector = None
    if migration is not None:
        pool = stores.settings.apply_concurrency + 1
        target = projector_engine(
            migration.target_url,
            pool_size=pool,
            app="bloghub-migrated",
            statement_timeout_s=stores.settings.projector_statement_timeout_s,
        )
        projector = placed_projector(stores, migration, target)
    tasks = generation_tasks(stores, dead, name, generation, stop, projector=projector)
    try:
        await _until_stop_or_failure(tasks, stop)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if target is not None:
            await target.dispose()


# Where a projector runs: its active generation, and its migration if that generation is
# being moved to another database.
Placement = tuple[int, Migration | None]


async def _placement(stores: Stores, name: str, stop: asyncio.Event) -> Placement:
    said = where("PostgreSQL", stores.settings)
    generation = (await _active_generations(stores.engine, stop, said)).get(name, 1)
    migration = (await _migrations(stores.engine, stop, said)).get(name)
    if migration is not None and migration.generation != generation:
        migration = None  # a migration of a generation no longer served moves nothing
    return generation, migration


def _phase_of(placement: Placement) -> int | None:
    return None if placement[1] is None else int(placement[1].phase)


Said = Mapping[str, str]


async def _migrations(engine: AsyncEngine, stop: asyncio.Event, said: Said) -> dict[str, Migration]:
    backoff = Backoff(first_s=0.2, most_s=5.0)
    while True:
        try:
            async with translated(), engine.connect() as conn:
                return await all_migrations(conn)
        except (Transient, Unavailable) as exc:
            log.warning("projectors.waiting_for_database", error=repr(exc), **said)
            await backoff.sleep(stop)


async def _active_generations(
    engine: AsyncEngine, stop: asyncio.Event, said: Said | None = None
) -> dict[str, int]:
    """Which generation each projector serves. A database that is down at start-up is
    waited for, like a store that goes down later: the runners would only wait too.
    ``said``: what the log line says of where the database is looked for."""
    backoff = Backoff(first_s=0.2, most_s=5.0)
    while True:
        try:
            async with translated(), engine.connect() as conn:
                return await active_generations(conn)
        except (Transient, Unavailable) as exc:
            log.warning("projectors.waiting_for_database", error=repr(exc), **(said or {}))
            await backoff.sleep(stop)


async def _dead_letters_started(dead: DeadLetters, stop: asyncio.Event, said: Said) -> None:
    """Connect the dead-letter queue's producer. A Kafka that is out of reach at start-up
    (still starting, a blip) is waited for, as the database is: ending here would end every
    projector, and nothing restarts them. Each try is bounded, so a stop is prompt."""
    backoff = Backoff(first_s=0.2, most_s=5.0)
    while True:
        try:
            await dead.start()
            return
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("projectors.waiting_for_kafka", error=repr(exc), **said)
            await backoff.sleep(stop)


async def _until_stop_or_failure(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    for task in done:
        if task is not stopper and task.exception() is not None:
            log.error("projector.crashed", task=task.get_name(), error=repr(task.exception()))
            raise task.exception()  # type: ignore[misc]


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
