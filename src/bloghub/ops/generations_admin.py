"""What the replay tool does to the generations registry and a generation's stores: pick
the generation to build (or resume), switch one in, drop one."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.generations import (
    activate_generation,
    create_generation,
    schema_name,
)
from bloghub.adapters.postgres.migrations import all_migrations
from bloghub.adapters.postgres.tables import checkpoints, generations
from bloghub.events.topics import topic_for
from bloghub.ops.history import history_key, sampled_key
from bloghub.ops.lag import LagReader
from bloghub.ops.replay_lease import lease_holder
from bloghub.ops.replay_progress import progress_key, read_progress
from bloghub.projections.catalog import PROJECTORS, ProjectorClass
from bloghub.projections.port import TP, Projector
from bloghub.projections.redis_sink import RedisProjector
from bloghub.projections.runner_config import group_id
from bloghub.projections.search_sink import SearchProjector
from bloghub.projections.stats import applied_key, last_commit_key
from bloghub.projections.stores import Stores

log = structlog.get_logger(__name__)
REWIND_TIMEOUT_S = 15.0

# A generation being filled, or filled and verified but not switched in (``--no-swap``).
UNFINISHED = ("building", "built")
DEFAULT_GENERATION = 1


class ReplayRefused(Exception):
    """An operator's request the registry's state does not allow (a clear message)."""


def projector_class(name: str) -> ProjectorClass:
    try:
        return PROJECTORS[name]
    except KeyError:
        raise ReplayRefused(f"unknown projector {name!r}; known: {', '.join(PROJECTORS)}") from None


async def registry_of(stores: Stores, name: str) -> dict[int, str]:
    """Every registered generation of ``name`` with its state."""
    g = generations.c
    async with stores.engine.connect() as conn:
        rows = await conn.execute(
            select(g.generation, g.state).where(g.projector == name).order_by(g.generation)
        )
        return {r.generation: r.state for r in rows}


def served_by_default(known: dict[int, str]) -> dict[int, str]:
    """``known`` with generation 1 when it has no row: the projector processes serve it
    while no generation is registered active (search and user_search have no rows until
    their first replay), and it is retired once one is."""
    if DEFAULT_GENERATION in known:
        return known
    state = "retired" if "active" in known.values() else "active"
    return dict(sorted({**known, DEFAULT_GENERATION: state}.items()))


async def generations_of(stores: Stores, name: str) -> dict[int, str]:
    """Every generation of ``name`` there is, registered or served by default. Generation
    1 with no row while another is active is the one a replay retired (search and
    user_search have no row for it) only while anything of it is left: a drop removes the
    row and everything else, and what it dropped must not come back as retired."""
    known = await registry_of(stores, name)
    found = served_by_default(known)
    retired_by_default = DEFAULT_GENERATION not in known and found[DEFAULT_GENERATION] != "active"
    if retired_by_default and not await remains(stores, name, DEFAULT_GENERATION):
        del found[DEFAULT_GENERATION]
    return found


async def remains(stores: Stores, name: str, generation: int) -> bool:
    """Whether anything a drop removes is left of a generation: its schema, checkpoints,
    index or keys."""
    c = checkpoints.c
    async with stores.engine.connect() as conn:
        schema = await conn.scalar(
            text("SELECT to_regnamespace(:s)"), {"s": schema_name(name, generation)}
        )
        checkpointed = await conn.scalar(
            select(c.generation).where(c.projector == name, c.generation == generation).limit(1)
        )
    if schema is not None or checkpointed is not None:
        return True
    projector = projector_class(name).from_stores(stores, generation=generation)
    if isinstance(projector, SearchProjector):
        return bool(await stores.search.indices.exists(index=projector.index))
    if isinstance(projector, RedisProjector):
        return bool(await stores.redis.exists(projector.checkpoint_key))
    return False


async def require_generations(stores: Stores, name: str, *wanted: int) -> dict[int, str]:
    """The generations of ``name``, refused if any of ``wanted`` is not one of them."""
    projector_class(name)
    known = await generations_of(stores, name)
    missing = [g for g in wanted if g not in known]
    if missing:
        raise ReplayRefused(
            f"{name} has no generation {', '.join(map(str, missing))}; "
            f"it has {', '.join(map(str, known))}"
        )
    return known


def generation_to_build(known: dict[int, str]) -> int:
    """An unfinished generation is resumed from its own checkpoints; otherwise the next
    number. A projector with no registered generation serves generation 1 (the worker's
    default), so the first rebuild is generation 2."""
    unfinished = [g for g, state in known.items() if state in UNFINISHED]
    if unfinished:
        return max(unfinished)
    return max(known, default=1) + 1


async def prepare_generation(stores: Stores, name: str) -> Projector:
    """Register (or resume) the generation to build and create its stores; the projector
    comes back built from ``stores`` (which must have ``live`` off and no cache)."""
    cls = projector_class(name)
    async with stores.engine.connect() as conn:
        if name in await all_migrations(conn):
            # Its read model is (being) moved to another database, generation and all.
            raise ReplayRefused(f"{name} is migrated: see `bloghub migrate status`")
    generation = generation_to_build(await registry_of(stores, name))
    async with stores.engine.begin() as conn:
        await create_generation(conn, name, generation, activate=False)
        await _set_state(conn, name, generation, "building")
    projector = cls.from_stores(stores, generation=generation)
    if isinstance(projector, SearchProjector):
        await projector.ensure_index(serve=False)
    log.info("replay.prepared", projector=name, generation=generation)
    return projector


async def mark_built(stores: Stores, name: str, generation: int) -> None:
    async with stores.engine.begin() as conn:
        await _set_state(conn, name, generation, "built")


async def _set_state(conn: AsyncConnection, name: str, generation: int, state: str) -> None:
    g = generations.c
    await conn.execute(
        update(generations)
        .where(g.projector == name, g.generation == generation, g.state.in_(UNFINISHED))
        .values(state=state)
    )


async def switch_in(stores: Stores, projector: Projector) -> None:
    """Reads move to this generation: the registry (which every API and projector process
    re-reads every few seconds) in one statement, and a search index's alias."""
    async with stores.engine.begin() as conn:
        await activate_generation(conn, projector.name, projector.generation)
    if isinstance(projector, SearchProjector):
        await projector.ensure_index(serve=True)
    log.info("replay.switched", projector=projector.name, generation=projector.generation)


async def drop_generation(
    stores: Stores, name: str, generation: int, *, force: bool = False
) -> None:
    """Remove a generation that does not serve: its schema, checkpoints, keys or index.
    One a running replay builds is refused unless ``force``d."""
    state = (await require_generations(stores, name, generation))[generation]
    if state == "active":
        raise ReplayRefused(f"{name} generation {generation} serves reads: switch first")
    if state in UNFINISHED and not force:
        await _refuse_while_replayed(stores, name, generation)
    projector = projector_class(name).from_stores(stores, generation=generation)
    if isinstance(projector, RedisProjector):
        async for key in stores.redis.scan_iter(match=f"{projector.keyspace}:*", count=1000):
            await stores.redis.delete(key)
    if isinstance(projector, SearchProjector):
        await stores.search.indices.delete(index=projector.index, ignore_unavailable=True)
    async with stores.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_name(name, generation)}" CASCADE'))
        c = checkpoints.c
        await conn.execute(
            delete(checkpoints).where(c.projector == name, c.generation == generation)
        )
        g = generations.c
        await conn.execute(
            delete(generations).where(g.projector == name, g.generation == generation)
        )
    prefix = stores.settings.prefix
    group = group_id(prefix, name, generation)
    # What the dashboard kept of its consumer group: no dropped generation's figures stay.
    await stores.redis.delete(
        progress_key(prefix, name, generation),
        applied_key(prefix, group),
        last_commit_key(prefix, group),
        history_key(prefix, group),
    )
    await stores.redis.zrem(sampled_key(prefix), group)
    await _rewind_group(stores, projector, group)
    log.info("replay.dropped", projector=name, generation=generation, was=state)


async def _rewind_group(stores: Stores, projector: Projector, group: str) -> None:
    """Set the dropped generation's consumer group back to the start of the log: the next
    generation built under its number (numbers are taken again once dropped) shows, in
    lag tools and the dashboard, the whole log still to apply until its builder commits,
    not the dropped one's offsets. Kafka keeps the group (the client library cannot delete
    one); a group with members (a build dropped by force) or a broker out of reach is left
    as it is, and said: the builder's first commit then puts it right."""
    settings = stores.settings
    topics = [topic_for(settings.prefix, f) for f in projector.families]
    reader = LagReader(settings.kafka_bootstrap, settings.prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=10_000,
    )
    # A refused commit is ours to say (below), once: the client library would log it at
    # error level, again at every rejoin it tries.
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    level = coordinator.level
    coordinator.setLevel(logging.CRITICAL)
    try:
        await asyncio.wait_for(reader.start(), REWIND_TIMEOUT_S)
        found = await asyncio.wait_for(reader.read({group: topics}), REWIND_TIMEOUT_S)
        starts = {
            TopicPartition(p.topic, p.partition): p.log_start for g in found for p in g.partitions
        }
        if starts:
            await asyncio.wait_for(consumer.start(), REWIND_TIMEOUT_S)
            consumer.assign(list(starts))
            await asyncio.wait_for(consumer.commit(starts), REWIND_TIMEOUT_S)
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning(
            "replay.group_not_rewound",
            group=group,
            error=repr(exc),
            hint="its builder's first commit puts it right",
        )
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await reader.close()
        coordinator.setLevel(level)


async def _refuse_while_replayed(stores: Stores, name: str, generation: int) -> None:
    """A replay of ``name`` holds its lease; one that died publishes progress for up to
    its TTL yet (it may be restarted to resume)."""
    prefix = stores.settings.prefix
    holder = await lease_holder(stores.redis, prefix, name)
    progress = (await read_progress(stores.redis, prefix, [(name, generation)])).get(
        (name, generation)
    )
    if holder is None and (progress is None or progress.state != "building"):
        return
    by = f" ({holder})" if holder else ""
    raise ReplayRefused(
        f"{name} generation {generation} is being built by a running replay{by}: stop it "
        "first, or drop with --force"
    )


class LogEnds:
    """Where every partition of a projector's topics ends now (the ops lag reader's view)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self._prefix = prefix
        self._reader = LagReader(bootstrap, prefix)

    async def start(self) -> None:
        await self._reader.start()

    async def close(self) -> None:
        await self._reader.close()

    async def ends(self, projector: Projector) -> dict[TP, int]:
        topics = [topic_for(self._prefix, f) for f in projector.families]
        group = group_id(self._prefix, projector.name, projector.generation)
        found = await self._reader.read({group: topics})
        return {(p.topic, p.partition): p.end_offset for g in found for p in g.partitions}
