"""``bloghub migrate``: move one projector's PostgreSQL read model to another database while
it serves, in four phases (bloghub/migration_phases.py).

``start`` creates the generation's schema and a checkpoints table in the target, registers
phase 1 and fills the target from the start of the log (its own consumer group); once caught up it
moves to phase 2, where the live projector processes write both stores. ``phase`` moves
one phase forward or back, refused while the store the move starts reading or writing is
further behind the log than ``replay_caught_up_events``; ``fill`` catches up the store a
phase leaves unwritten (the target in phase 1, the source in phase 4).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Self

import structlog
from aiokafka.errors import KafkaError
from opensearchpy import AsyncOpenSearch
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.generations import active_generations, read_model_in, schema_name
from bloghub.adapters.postgres.migrations import (
    Migration,
    all_migrations,
    register_migration,
    remove_migration,
    set_phase,
    shown_url,
)
from bloghub.adapters.postgres.read_model_upgrades import built_current
from bloghub.adapters.postgres.tables import checkpoints
from bloghub.errors import StoreRejected, Transient, Unavailable
from bloghub.events.base import registry
from bloghub.migration_phases import (
    PINNED_TO_MAIN,
    MigrationRefused,
    Phase,
    Store,
    check_move,
    must_catch_up,
    unwritten,
)
from bloghub.ops.generations_admin import LogEnds
from bloghub.ops.replay import building_stores, close_stores, measure
from bloghub.ops.replay_lease import lease_holder
from bloghub.ops.replay_progress import RateMeter, ReplayProgress, applied_of, measured
from bloghub.projections.backoff import wait_any
from bloghub.projections.catalog import PROJECTORS
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.migration_sinks import projector_in
from bloghub.projections.postgres_sink import PostgresProjector, projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig, group_id
from bloghub.projections.stores import Stores
from bloghub.settings import Settings, asyncpg_url

log = structlog.get_logger(__name__)

Show = Callable[[ReplayProgress], None]


class NotMigrated(MigrationRefused):
    """The projector has no migration."""


@dataclass
class MigrationStores:
    """The main database's stores (quiet: no cache, no side effects) and the target's engine."""

    stores: Stores
    target: AsyncEngine | None = None

    @classmethod
    def of(
        cls, settings: Settings, engine: AsyncEngine, redis: Redis, search: AsyncOpenSearch
    ) -> Self:
        """An API process's own clients, quietly (a move reads checkpoints and log ends)."""
        return cls(Stores(settings, engine, redis, search, cache=None, live=False))

    def engine(self, store: Store, migration: Migration) -> AsyncEngine:
        if store is Store.SOURCE:
            return self.stores.engine
        if self.target is None:
            self.target = projector_engine(migration.target_url, pool_size=3, app="bloghub-migrate")
        return self.target

    def projector(self, store: Store, migration: Migration) -> PostgresProjector:
        return projector_in(
            self.stores,
            migration.projector,
            migration.generation,
            self.engine(store, migration),
            serving=False,
        )


@asynccontextmanager
async def migration_stores(settings: Settings) -> AsyncIterator[MigrationStores]:
    stores = building_stores(settings, pool_size=3)
    found = MigrationStores(stores)
    try:
        yield found
    finally:
        if found.target is not None:
            await found.target.dispose()
        await close_stores(stores)


async def migration_of(stores: Stores, name: str) -> Migration:
    async with translated(), stores.engine.connect() as conn:
        found = (await all_migrations(conn)).get(name)
    if found is None:
        if name not in PROJECTORS:
            raise NotMigrated(f"unknown projector {name!r}; known: {', '.join(PROJECTORS)}")
        if name in PINNED_TO_MAIN:
            raise NotMigrated(
                f"{name} is not being migrated: it cannot move to another database "
                f"({PINNED_TO_MAIN[name]})"
            )
        raise NotMigrated(f"{name} is not being migrated: `bloghub migrate start {name}`")
    return found


async def start(ms: MigrationStores, name: str, target_url: str) -> Migration:
    """Prepare the target, then register phase 1 (idempotent: a start again resumes). A
    target that cannot be reached or prepared, or a log out of reach, is refused with
    nothing registered."""
    settings = ms.stores.settings
    if name in PINNED_TO_MAIN:
        raise MigrationRefused(f"{name} cannot move to another database: {PINNED_TO_MAIN[name]}")
    # A replay builds a generation to switch in on the main database: a migration of the
    # one serving meanwhile would be left behind by the switch (the replay refuses to
    # switch once one is registered, and refuses to start on a migrated projector).
    replaying = await lease_holder(ms.stores.redis, settings.prefix, name)
    if replaying is not None:
        raise MigrationRefused(
            f"{name} is being replayed ({replaying}): let the replay end, or stop it, first"
        )
    try:
        target_url = asyncpg_url(target_url)  # read as BLOGHUB_DATABASE_URL is
    except ValueError as exc:
        raise MigrationRefused(f"the target URL (--to): {exc}") from None
    if make_url(target_url) == make_url(settings.sqlalchemy_url):
        raise _same_database()
    async with translated(), ms.stores.engine.connect() as conn:
        generation = (await active_generations(conn)).get(name, 1)
        registered = (await all_migrations(conn)).get(name)
    _refuse_other_target(registered, target_url)
    projector_in(ms.stores, name, generation, ms.stores.engine, serving=False)  # known?
    if registered is None or registered.phase is Phase.SOURCE_ONLY:
        # The fill reads the log: one out of reach is said before anything is prepared or
        # registered (a registered migration holds the projector's replays until aborted).
        ends = LogEnds(settings.kafka_bootstrap, settings.prefix)
        await ends.start()
        await ends.close()
    planned = Migration(name, generation, target_url, Phase.SOURCE_ONLY)
    try:
        target = ms.engine(Store.TARGET, planned)
        # The same database under another spelling (localhost, an address, a port's
        # default, another role) would be source and target at once.
        if await database_identity(target) == await database_identity(ms.stores.engine):
            raise _same_database()
        await _prepare_target(target, planned)
    except UNREACHABLE as exc:
        raise unreachable_target(target_url, exc) from exc
    async with translated(), ms.stores.engine.begin() as conn:
        await register_migration(conn, name, generation, target_url)
        migration = (await all_migrations(conn))[name]
    # Another operator's start, to another target, may have registered first.
    _refuse_other_target(migration, target_url)
    log.info("migrate.started", projector=name, target=shown_url(target_url))
    return migration


class TargetUnreachable(MigrationRefused):
    """The migration's target database did not answer (the main one may well have)."""


# What a database that cannot be reached raises on the way here.
UNREACHABLE = (Transient, Unavailable, StoreRejected, SQLAlchemyError, OSError)


def unreachable_target(target_url: str, exc: BaseException) -> TargetUnreachable:
    where = shown_url(target_url)
    return TargetUnreachable(f"cannot reach the target {where}: {target_reason(exc)}")


async def _progress_in(
    ms: MigrationStores, ends: LogEnds, migration: Migration, store: Store
) -> tuple[int, int]:
    """``progress_of``, a target that does not answer named as the target: an operator
    told the main database is unreachable looks at a healthy one."""
    try:
        return await progress_of(ms, ends, migration, store)
    except UNREACHABLE as exc:
        if store is not Store.TARGET:
            raise
        raise unreachable_target(migration.target_url, exc) from exc


def _same_database() -> MigrationRefused:
    return MigrationRefused("the target is the database the read model is in already")


@dataclass(frozen=True, slots=True)
class DatabaseIdentity:
    system: int | None  # None: the role may not read it
    name: str
    oid: int
    started: datetime


def same_database(a: DatabaseIdentity, b: DatabaseIdentity) -> bool:
    if a.system is not None and b.system is not None and a.system != b.system:
        return False
    return (a.name, a.oid, a.started) == (b.name, b.oid, b.started)


async def database_identity(engine: AsyncEngine) -> DatabaseIdentity:
    """What tells one database from every other, as its server reports it, whatever URL
    reached it: the cluster's system identifier where the role may read it, and always the
    database's name and oid with the time the server started (no two servers started at
    the same microsecond hold a database of the same name and oid)."""
    async with translated(), engine.connect() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT current_database(), d.oid::bigint, pg_postmaster_start_time() "
                    "FROM pg_database d WHERE d.datname = current_database()"
                )
            )
        ).one()
        try:
            async with conn.begin_nested():
                system = await conn.scalar(
                    text("SELECT system_identifier FROM pg_control_system()")
                )
        except SQLAlchemyError:  # not granted to this role
            system = None
    return DatabaseIdentity(
        int(system) if system is not None else None, found[0], int(found[1]), found[2]
    )


def _refuse_other_target(existing: Migration | None, target_url: str) -> None:
    if existing is not None and existing.target_url != target_url:
        raise MigrationRefused(
            f"{existing.projector} is already migrating to {shown_url(existing.target_url)}"
        )


def target_reason(exc: BaseException) -> str:
    # The driver's own words, without SQLAlchemy's statement and link.
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc) or type(exc).__name__


async def _prepare_target(engine: AsyncEngine, migration: Migration) -> None:
    schema = schema_name(migration.projector, migration.generation)
    async with translated(), engine.begin() as conn:
        found = text("SELECT 1 FROM pg_namespace WHERE nspname = :s")
        fresh = (await conn.execute(found, {"s": schema})).first() is None
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        model = read_model_in(migration.projector, schema)
        await conn.run_sync(model.create_all, checkfirst=True)
        if fresh:  # a start again keeps what an earlier one (maybe older code) recorded
            await conn.run_sync(built_current, migration.projector, schema)
        # The target store's own checkpoints, committed with its rows (exactly once there).
        await conn.run_sync(checkpoints.create, checkfirst=True)


async def progress_of(
    ms: MigrationStores, ends: LogEnds, migration: Migration, store: Store
) -> tuple[int, int]:
    """(applied, in the log) of the generation in ``store``."""
    return applied_of(*await measure(ends, ms.projector(store, migration)))


async def move(ms: MigrationStores, name: str, wanted: Phase) -> Migration:
    """One phase forward or back, refused while the store the move depends on is behind."""
    migration = await migration_of(ms.stores, name)
    check_move(migration.phase, wanted)
    store = must_catch_up(migration.phase, wanted)
    if store is not None:
        await _refuse_gone(ms, migration, store, f"phase {int(wanted)} cannot use it")
        await _refuse_behind(ms, migration, store)
    async with translated(), ms.stores.engine.begin() as conn:
        if not await set_phase(conn, name, migration.phase, wanted):
            raise MigrationRefused(f"{name} changed phase meanwhile: look again")
    log.info("migrate.phase", projector=name, left=int(migration.phase), now=int(wanted))
    return dataclasses.replace(migration, phase=wanted)


async def _refuse_gone(ms: MigrationStores, migration: Migration, store: Store, why: str) -> None:
    """Refused when the generation's schema is not in ``store`` any more: the runbook drops
    the source's by hand once phase 4 is final. Its checkpoints are kept apart (in
    ``projector_checkpoints``), so without this a move back to 3 passed the catch-up check
    and the live projector, writing the source first, stopped on the missing tables, and
    the target that serves reads with it."""
    schema = ms.projector(store, migration).schema
    try:
        async with ms.engine(store, migration).connect() as conn:
            found = await conn.scalar(text("SELECT to_regnamespace(:s) IS NOT NULL"), {"s": schema})
    except UNREACHABLE as exc:
        if store is not Store.TARGET:
            raise
        raise unreachable_target(migration.target_url, exc) from exc
    if not found:
        raise MigrationRefused(
            f"the {store} store of {migration.projector} has no schema {schema} any more "
            f"(dropped after phase 4?): {why}"
        )


async def _refuse_behind(ms: MigrationStores, migration: Migration, store: Store) -> None:
    bound = ms.stores.settings.replay_caught_up_events
    ends = LogEnds(ms.stores.settings.kafka_bootstrap, ms.stores.settings.prefix)
    await ends.start()
    try:
        done, total = await _progress_in(ms, ends, migration, store)
    finally:
        await ends.close()
    if total - done > bound:
        name = migration.projector
        hint = (
            f"run `bloghub migrate fill {name}`"
            if unwritten(migration.phase) is store
            else "both stores are written live: try again shortly"
        )
        raise MigrationRefused(
            f"the {store} store of {name} is {total - done} events behind the log "
            f"(at most {bound}): {hint}"
        )


async def abort(ms: MigrationStores, name: str) -> None:
    """Forget a migration still in phase 1 (nothing live writes or reads the target)."""
    migration = await migration_of(ms.stores, name)
    if migration.phase is not Phase.SOURCE_ONLY:
        raise MigrationRefused(f"{name} is in phase {int(migration.phase)}: move back to 1 first")
    async with translated(), ms.stores.engine.begin() as conn:
        if not await remove_migration(conn, name, Phase.SOURCE_ONLY):
            raise MigrationRefused(f"{name} changed phase meanwhile: look again")


@dataclass(frozen=True, slots=True)
class FillPlan:
    advance: bool = True  # phase 1 only: move to phase 2 once caught up
    every_s: float = 1.0


async def fill(
    ms: MigrationStores, name: str, plan: FillPlan, *, show: Show, stop: asyncio.Event
) -> ReplayProgress:
    """Apply the log to the store the phase leaves unwritten until it has caught up (and,
    in phase 1 with ``advance``, move to phase 2 and go on until the live projector
    processes have had a poll to take the target over)."""
    migration = await migration_of(ms.stores, name)
    store = unwritten(migration.phase)
    if store is None:
        raise MigrationRefused(f"phase {int(migration.phase)} writes both stores: nothing to fill")
    await _refuse_gone(ms, migration, store, "there is nothing to fill")
    settings = ms.stores.settings
    projector = ms.projector(store, migration)
    dead = DeadLetters.from_settings(settings, ms.stores.redis, building=migration.generation)
    config = dataclasses.replace(
        RunnerConfig.from_settings(settings),
        group=f"{group_id(settings.prefix, name, migration.generation)}.fill-{store}",
    )
    runner = ProjectorRunner(projector, config=config, registry=registry, dead_letters=dead)
    ends = LogEnds(settings.kafka_bootstrap, settings.prefix)
    own_stop = asyncio.Event()
    await dead.start()
    try:
        await ends.start()
        task = asyncio.create_task(runner.run(own_stop), name=f"migrate-fill:{name}")
        try:
            last = await _follow_fill(ms, ends, migration, store, plan, show, stop, task)
        finally:
            own_stop.set()
            await asyncio.gather(task, return_exceptions=True)
        # Measured again once the runner has finished the batch in hand: the last figure
        # was taken before it, and said the store further behind than it is. A store or
        # a log that does not answer now leaves the last figure: the fill itself is done.
        try:
            done, total = await _progress_in(ms, ends, migration, store)
        except (MigrationRefused, KafkaError, *UNREACHABLE):
            return last
        final = dataclasses.replace(
            last, done=max(done, last.done), total=max(total, last.total), at=time.time()
        )
        show(final)
        return final
    finally:
        await ends.close()
        await dead.close()


async def _follow_fill(
    ms: MigrationStores,
    ends: LogEnds,
    migration: Migration,
    store: Store,
    plan: FillPlan,
    show: Show,
    stop: asyncio.Event,
    task: asyncio.Task[None],
) -> ReplayProgress:
    settings = ms.stores.settings
    meter, state, moved_at = RateMeter(), f"filling {store}", None
    handover_s = 2 * settings.generations_poll_s + 1
    while True:
        done, total = await _progress_in(ms, ends, migration, store)
        caught_up = total - done <= settings.replay_caught_up_events
        if caught_up and moved_at is None:
            if plan.advance and migration.phase is Phase.SOURCE_ONLY:
                migration = await move(ms, migration.projector, Phase.SOURCE_FIRST)
                state, moved_at = "phase 2", time.monotonic()
            else:
                state = "caught up"
        progress = measured(migration.projector, migration.generation, state, done, total, meter)
        show(progress)
        if state == "caught up" or stop.is_set():
            return progress
        if moved_at is not None and time.monotonic() - moved_at > handover_s:
            return progress
        if task.done():
            task.result()
            raise RuntimeError("the fill stopped before it caught up")
        await wait_any(plan.every_s, stop)
