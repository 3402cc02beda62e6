"""``bloghub replay``: build new generations of projectors from the start of the log while
the active ones keep serving, then switch reads to them once they have caught up.

The coordinator prepares each generation (or resumes an unfinished one from its own
checkpoints), runs the builders (in this process, or ``--workers`` child processes in the
generation's consumer group, which share its partitions), measures progress from the
log's ends and the generation's checkpoints, publishes it for the dashboard, and switches
each generation in once it has reached the log's end (as read at the step before) and
everything the serving generation has applied when the switch is decided, so that what
readers saw before the switch is there after it. It keeps applying until a projector
process has taken the new generation over.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import structlog
from pydantic import SecretStr
from sqlalchemy.dialects.postgresql import insert

import bloghub.events.catalog  # noqa: F401  (registers every event type)
from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.migrations import all_migrations
from bloghub.adapters.postgres.tables import generations
from bloghub.adapters.redis import make_redis
from bloghub.ops.generations_admin import (
    UNFINISHED,
    LogEnds,
    ReplayRefused,
    generation_to_build,
    generations_of,
    mark_built,
    prepare_generation,
    projector_class,
    registry_of,
    require_generations,
    switch_in,
)
from bloghub.ops.replay_lease import ReplayLeases
from bloghub.ops.replay_progress import RateMeter, ReplayProgress, applied_of, measured, publish
from bloghub.processes import ending_with_parent, stop_process
from bloghub.projections.backoff import wait_any
from bloghub.projections.dead_letters import DeadLetters
from bloghub.projections.heartbeat import read_heartbeats
from bloghub.projections.port import TP, Projector
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.search_sink import SearchProjector
from bloghub.projections.stores import Stores
from bloghub.projections.worker import _until_stop_or_failure, generation_tasks
from bloghub.settings import Settings

log = structlog.get_logger(__name__)

Show = Callable[[Sequence[ReplayProgress]], None]

LEVEL_POLL_S = 0.05  # how often a caught-up generation is looked at against the serving one


def building_stores(settings: Settings, *, pool_size: int) -> Stores:
    """Stores for generations being built: no shared cache, side effects off."""
    redis = make_redis(settings.redis_url.get_secret_value())
    return Stores(
        settings=settings,
        engine=projector_engine(settings.sqlalchemy_url, pool_size=pool_size, app="bloghub-replay"),
        redis=redis,
        search=make_opensearch(settings.opensearch_url),
        cache=None,
        live=False,
    )


async def close_stores(stores: Stores) -> None:
    await stores.redis.aclose()
    await stores.search.close()
    await stores.engine.dispose()


async def run_builders(settings: Settings, names: Sequence[str], stop: asyncio.Event) -> None:
    """Apply the unfinished generation of each named projector until ``stop``: the body of
    a builder, in the coordinator's process or in a ``--workers`` child."""
    per_runner = settings.apply_concurrency + 1
    stores = building_stores(settings, pool_size=per_runner * max(1, len(names)))
    letters: list[DeadLetters] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for name in names:
            generation = generation_to_build(await registry_of(stores, name))
            dead = DeadLetters.from_settings(settings, stores.redis, building=generation)
            await dead.start()
            letters.append(dead)
            tasks += _builder_tasks(stores, dead, name, generation, stop)
        await _until_stop_or_failure(tasks, stop)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for dead in letters:
            await dead.close()
        await close_stores(stores)


def _builder_tasks(
    stores: Stores, dead: DeadLetters, name: str, generation: int, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    projector_class(name)  # an unknown name is refused with the known ones listed
    return generation_tasks(stores, dead, name, generation, stop, label="replay")


@dataclass
class Build:
    """One generation being built, as the coordinator follows it."""

    projector: Projector
    meter: RateMeter = field(default_factory=RateMeter)
    state: str = "building"
    switched_at: float | None = None
    # The log's ends as sampled at the previous step: the generation has caught up once
    # every partition's checkpoint is at or past them (later writes cannot starve it).
    target: dict[TP, int] | None = None
    finished: bool = False
    progress: ReplayProgress | None = None


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    names: Sequence[str]
    workers: int = 1
    swap: bool = True
    every_s: float = 1.0


class Builders:
    """The processes (or the in-process task) that apply the generations being built."""

    def __init__(self, settings: Settings, names: Sequence[str], workers: int) -> None:
        self._settings = settings
        self._names = list(names)
        self._workers = workers
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        if self._workers <= 1:
            self._task = asyncio.create_task(run_builders(self._settings, self._names, self._stop))
            return
        command = [sys.executable, "-m", "bloghub.cli", "replay", "--builder", *self._names]
        env = {**os.environ, **settings_environment(self._settings)}
        self.children = [
            # Our own interpreter and module, with names checked against the catalog.
            subprocess.Popen(command, env=env, preexec_fn=ending_with_parent(signal.SIGKILL))  # noqa: S603
            for _ in range(self._workers)
        ]

    @property
    def pids(self) -> set[int]:
        return {os.getpid(), *(c.pid for c in self.children)}

    def check(self) -> None:
        """Raise if a builder died: the replay cannot finish without it."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise RuntimeError("the builder stopped before the replay finished")
        for child in self.children:
            if child.poll() is not None:
                raise RuntimeError(f"builder process {child.pid} exited with {child.returncode}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(
            *(asyncio.to_thread(stop_process, c, grace_s=30) for c in self.children)
        )


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as ``BLOGHUB_*`` variables: a builder process must work on exactly the
    coordinator's log and stores, however the coordinator got its settings."""
    out = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue  # unset: the default
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, Enum):
            value = value.value
        text = json.dumps(value) if isinstance(value, list | dict | bool) else str(value)
        out[f"BLOGHUB_{name.upper()}"] = text
    return out


async def replay(
    settings: Settings, plan: ReplayPlan, *, show: Show, stop: asyncio.Event
) -> list[ReplayProgress]:
    """Build (or resume) a generation of every projector in ``plan`` and, unless told not
    to, switch each in once caught up. Returns the last progress of each."""
    for name in plan.names:
        projector_class(name)  # an unknown name is refused before anything is created
    stores = building_stores(settings, pool_size=2)
    leases = ReplayLeases(stores.redis, settings.prefix, plan.names)
    ends = LogEnds(settings.kafka_bootstrap, settings.prefix)
    kept = asyncio.Event()
    try:
        # Every name is checked before any generation is prepared: nothing changes on a
        # refusal.
        await refuse_migrated(stores, plan.names)
        await _reach_search(stores, plan.names)
        held = await leases.take()
        if held is not None:
            raise ReplayRefused(
                f"{held[0]} is being replayed already ({held[1]}): wait for that replay "
                "to end, or stop it"
            )
        keeper = asyncio.create_task(leases.keep(kept), name="replay-lease")
        await ends.start()
        try:
            builds = [Build(await prepare_generation(stores, name)) for name in plan.names]
            builders = Builders(settings, plan.names, plan.workers)
            builders.start()
            try:
                await _follow_builds(stores, ends, builds, builders, leases, plan, show, stop)
            finally:
                await builders.stop()
            if stop.is_set():
                # A builder drains the batch it was applying as it stops (a replay's batch
                # can hold thousands of events): the last figures are taken after that.
                for build in builds:
                    if not build.finished:
                        await _measured_again(stores, ends, build)
                show([b.progress for b in builds if b.progress is not None])
            return [b.progress for b in builds if b.progress is not None]
        finally:
            kept.set()
            await keeper
            await ends.close()
    finally:
        await leases.release()
        await close_stores(stores)


async def _follow_builds(
    stores: Stores,
    ends: LogEnds,
    builds: list[Build],
    builders: Builders,
    leases: ReplayLeases,
    plan: ReplayPlan,
    show: Show,
    stop: asyncio.Event,
) -> None:
    while True:
        for build in builds:
            if not build.finished:
                await _step(stores, ends, build, builders, plan, stop)
                assert build.progress is not None
                await publish(stores.redis, stores.settings.prefix, build.progress)
        show([b.progress for b in builds if b.progress is not None])
        if all(b.finished for b in builds) or stop.is_set():
            return
        builders.check()
        if leases.lost is not None:
            raise ReplayRefused(f"another replay took the lease on {leases.lost}: stopped")
        await wait_any(plan.every_s, stop)


async def measure(ends: LogEnds, projector: Projector) -> tuple[dict[TP, int], dict[TP, int]]:
    """A generation's checkpoints, and the log's ends, per partition."""
    at = await ends.ends(projector)
    return await projector.load_checkpoints(list(at)), at


def reached(checkpoints: Mapping[TP, int], target: Mapping[TP, int]) -> bool:
    """Whether every partition's checkpoint is at or past its offset in ``target``."""
    return all(checkpoints.get(tp, 0) >= offset for tp, offset in target.items())


async def _step(
    stores: Stores,
    ends: LogEnds,
    build: Build,
    builders: Builders,
    plan: ReplayPlan,
    stop: asyncio.Event,
) -> None:
    """Measure a generation and, once it has caught up, mark it built or switch it in;
    a stop asked for before the switch leaves it unswitched (it is measured still, for
    the operator's last look)."""
    p = build.projector
    if build.state == "building" and p.generation not in await registry_of(stores, p.name):
        # Dropped by force while built: nothing is left to build into or switch in.
        raise ReplayRefused(
            f"{p.name} generation {p.generation} was dropped while it was built: stopped"
        )
    checkpoints, at = await measure(ends, p)
    done, total = applied_of(checkpoints, at)
    if build.state == "building":
        # Caught up: at or past the log's ends sampled at the previous step (at the first,
        # those just read, before the checkpoints). A steady write stream moves the ends
        # on, never this target, so it cannot starve the switch.
        if reached(checkpoints, build.target if build.target is not None else at):
            if not plan.swap:
                # Built without a switch, up to the log as it stood a step ago: a verify
                # against a quiet live generation finds them equal.
                await mark_built(stores, p.name, p.generation)
                build.state, build.finished = "built", True
            elif (
                await _level_with_serving(stores, p, list(at), within_s=plan.every_s)
                # Asked last: the level check waits up to a step, and a stop (Ctrl-C at
                # the start of a replay of a built generation) may come meanwhile.
                and not stop.is_set()
            ):
                # A migration registered while this replay built (its start refuses while
                # the lease is held, but may have looked just before it was taken) moves
                # the generation serving now: this one is not switched in over it.
                await refuse_migrated(stores, [p.name])
                await switch_in(stores, p)
                build.state, build.switched_at = "switched", time.monotonic()
        build.target = at
    if build.state == "switched":
        build.finished = await _handed_over(stores, build, builders.pids)
    build.progress = measured(p.name, p.generation, build.state, done, total, build.meter)


async def _measured_again(stores: Stores, ends: LogEnds, build: Build) -> None:
    p = build.projector
    done, total = applied_of(*await measure(ends, p))
    build.progress = measured(p.name, p.generation, build.state, done, total, build.meter)
    await publish(stores.redis, stores.settings.prefix, build.progress)


async def _level_with_serving(
    stores: Stores, building: Projector, partitions: list[TP], *, within_s: float
) -> bool:
    """Whether ``building`` has applied, on every partition, at least what the generation
    serving reads has applied now, waiting up to ``within_s`` for it to get there (the
    mark is taken once, so a steady write stream cannot starve it): what readers saw
    before a switch is there after it."""
    serving = [g for g, s in (await generations_of(stores, building.name)).items() if s == "active"]
    if not serving or serving[0] == building.generation:
        return True
    shown = await (
        projector_class(building.name)
        .from_stores(stores, generation=serving[0])
        .load_checkpoints(partitions)
    )
    deadline = time.monotonic() + within_s
    while not reached(await building.load_checkpoints(partitions), shown):
        if time.monotonic() >= deadline:
            log.info("replay.behind_serving", projector=building.name, serving=serving[0])
            return False
        await asyncio.sleep(LEVEL_POLL_S)
    return True


async def _handed_over(stores: Stores, build: Build, ours: set[int]) -> bool:
    """Whether a projector process (not one of ours) now runs the switched-in generation,
    or none runs this projector at all, or the handover bound ran out."""
    assert build.switched_at is not None
    settings, p = stores.settings, build.projector
    if time.monotonic() - build.switched_at > settings.replay_handover_s:
        log.warning("replay.no_handover", projector=p.name, generation=p.generation)
        return True
    others = [
        beat
        for beat in await read_heartbeats(stores.redis, settings.prefix, p.name)
        if beat.get("pid") not in ours
    ]
    return not others or any(beat.get("generation") == p.generation for beat in others)


async def _reach_search(stores: Stores, names: Sequence[str]) -> None:
    """OpenSearch answers, if any of ``names`` writes to it: asked before any generation is
    registered, so a replay refused for it leaves no generation "building" behind."""
    if any(issubclass(projector_class(name), SearchProjector) for name in names):
        await stores.search.info()


async def refuse_migrated(stores: Stores, names: Sequence[str]) -> None:
    """Refuse if any of ``names`` is migrated (or being migrated): its read model is moved
    to another database, generation and all, and only ``bloghub migrate`` changes it."""
    async with stores.engine.connect() as conn:
        migrated = await all_migrations(conn)
    for name in names:
        if name in migrated:
            raise ReplayRefused(f"{name} is migrated: see `bloghub migrate status`")


async def activate_checked(settings: Settings, name: str, generation: int) -> ReplayProgress:
    """Switch reads to ``generation`` of ``name``: refused unless it exists, the projector
    is not migrated, and the generation is within ``replay_caught_up_events`` of the log."""
    stores = building_stores(settings, pool_size=1)
    ends = LogEnds(settings.kafka_bootstrap, settings.prefix)
    await ends.start()
    try:
        await refuse_migrated(stores, [name])
        # Generation 1 of search and user_search exists without a row until one is added.
        state = (await require_generations(stores, name, generation))[generation]
        projector = projector_class(name).from_stores(stores, generation=generation)
        done, total = applied_of(*await measure(ends, projector))
        if total - done > settings.replay_caught_up_events:
            raise ReplayRefused(
                f"{name} generation {generation} is {total - done} events behind the log "
                f"(at most {settings.replay_caught_up_events}): "
                + await _catch_up_advice(stores, name, generation, state)
            )
        async with stores.engine.begin() as conn:
            # The default generation gets its row, to be the active one.
            await conn.execute(
                insert(generations)
                .values(projector=name, generation=generation, state="retired")
                .on_conflict_do_nothing()
            )
        await switch_in(stores, projector)
        return measured(name, generation, "switched", done, total, RateMeter())
    finally:
        await ends.close()
        await close_stores(stores)


async def _catch_up_advice(stores: Stores, name: str, generation: int, state: str) -> str:
    """What brings ``generation`` (or reads) up to the log: only the generation a replay
    builds or resumes is written besides the active one."""
    resumed = generation_to_build(await registry_of(stores, name))
    if state in UNFINISHED and resumed == generation:
        return (
            f"`bloghub replay {name}` resumes it and switches it in once caught up "
            "(`--no-swap` to only build it)"
        )
    return (
        f"nothing writes a {state} generation, so it cannot catch up; "
        f"`bloghub replay {name}` builds generation {resumed} from the log instead "
        "and switches it in"
    )
