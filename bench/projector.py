"""Projector throughput: the real runtime (``ProjectorRunner`` + ``UsersProjector`` on a fresh
database, with dead letters) against a consume-only loop over the same 200k events.

The users topic of a fresh prefix is filled with synthetic ``user.registered`` events (unique
ids and emails, a fixed password hash), sealed under a key per user (stored in ``user_keys``)
and encoded with the real codec, as the API writes them. Every figure is timed
from the moment the first batch is in hand to the moment the last event is done, so group
join and partition assignment are left out on both sides (they are shown separately):

* consume: a fresh consumer group with the runner's fetch settings reads every record; it is
  also repeated decoding each value, and decoding plus materialising the event model, to
  show what the runner pays before it ever touches the database;
* projector: done when the sum of the users projector's checkpoints in
  ``public.projector_checkpoints`` reaches the number of events.

Afterwards ``users_g1.users`` must hold exactly one row per event, or the run FAILED.
With ``--profile`` the projection is replayed from scratch under cProfile (on a part of the
events) and the self time is broken down by package.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import bloghub.events.users  # noqa: F401  (registers the users family's event types)
from bench import cpu
from bench.support import ARTIFACTS, Check, Figure, Report, bar_chart, console, rate, workspace
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.redis import make_redis
from bloghub.auth.sealing import master_key, new_user_key
from bloghub.events.base import envelop, registry
from bloghub.events.codec import decode, encode
from bloghub.events.personal import seal_event
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import DeadLetters, dlq_count_key
from bloghub.projections.gate import Part
from bloghub.projections.port import RawRecord
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.runner import ProjectorRunner
from bloghub.projections.runner_config import RunnerConfig
from bloghub.projections.users import REGISTER_USERS, UsersProjector
from bloghub.settings import Settings

NAME = "projector"
GOAL_RATIO = 0.3
GOAL_RATE = 10_000.0
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$YmVuY2htYXJrc2FsdA$" + "h" * 43
CHECKPOINT_SUM = (
    "SELECT coalesce(sum(next_offset), 0) FROM public.projector_checkpoints "
    "WHERE projector = $1 AND generation = $2"
)


@dataclass(frozen=True, slots=True)
class Params:
    events: int = 200_000
    seed_chunk: int = 5_000
    profile_events: int = 50_000
    deadline_s: float = 150.0


@dataclass(frozen=True, slots=True)
class Timing:
    """``startup_s``: start until the first batch is in hand; ``steady_s``: from there until
    the last event is done."""

    events: int
    startup_s: float
    steady_s: float
    batches: int

    @property
    def per_batch(self) -> float:
        return self.events / self.batches if self.batches else 0.0

    @property
    def rate(self) -> float:
        return rate(self.events, self.steady_s)

    @property
    def total_s(self) -> float:
        return self.startup_s + self.steady_s


class Overrun(RuntimeError):
    """The run did not finish within its deadline: there is no figure to report."""


# --- seeding ---------------------------------------------------------------------------------


async def seed(settings: Settings, topic: str, params: Params) -> float:
    """Write ``params.events`` registrations to ``topic``; seconds taken. Envelopes are built
    chunk by chunk so 200k of them never sit in memory at once."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="bloghub-bench-seed",
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    keys = await asyncpg.connect(settings.asyncpg_dsn)
    master = master_key(settings)
    started = time.perf_counter()
    try:
        for start in range(0, params.events, params.seed_chunk):
            futures, wrapped = [], []
            for i in range(start, min(start + params.seed_chunk, params.events)):
                user_id, key = new_id_str(), new_user_key()
                wrapped.append((user_id, master.wrap(user_id, key)))
                event = UserRegistered(
                    user_id=user_id,
                    email=f"{settings.prefix}-{i}@example.com",
                    password_hash=PASSWORD_HASH,
                )
                env = envelop(seal_event(event, key), actor_id=user_id, request_id=new_id_str())
                value, headers = encode(env)
                fut = await producer.send(
                    topic, value=value, key=env.aggregate_id.encode(), headers=headers
                )
                futures.append(fut)
            await keys.copy_records_to_table(
                "user_keys", records=wrapped, columns=["user_id", "wrapped_key"]
            )
            await asyncio.gather(*futures)
    finally:
        await keys.close()
        await producer.stop()
    return time.perf_counter() - started


# --- the baseline: consume only --------------------------------------------------------------

CONSUME_MODES = ("raw", "decode", "materialise")


async def consume(
    settings: Settings, topic: str, events: int, mode: str, deadline_s: float
) -> Timing:
    """Read ``events`` records with a fresh group and the runner's fetch settings; ``mode``
    says how much of the runner's per-record work is done as well."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.prefix}.bench-consume-{mode}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_events,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        first: float | None = None
        count = batches_seen = 0
        while count < events:
            if time.perf_counter() - started > deadline_s:
                raise Overrun(f"consume ({mode}): {count:,} of {events:,} in {deadline_s:.0f}s")
            batches = await consumer.getmany(
                timeout_ms=settings.batch_max_wait_ms, max_records=settings.batch_max_events
            )
            if batches:
                batches_seen += 1
                if first is None:
                    first = time.perf_counter()
            for records in batches.values():
                count += len(records)
                if mode == "decode":
                    for r in records:
                        decode(r.value)
                elif mode == "materialise":
                    for r in records:
                        registry.materialise(decode(r.value))
        done = time.perf_counter()
    finally:
        await consumer.stop()
    assert first is not None
    return Timing(
        events=count, startup_s=first - started, steady_s=done - first, batches=batches_seen
    )


# --- the measured thing: the projector runtime -----------------------------------------------


class TimedRunner(ProjectorRunner):
    """The real runner, noting when its first batch arrives; nothing else changes."""

    first_batch_at: float | None = None
    batches = 0

    async def decode_batch(
        self, batches: Mapping[TopicPartition, Sequence[RawRecord]]
    ) -> list[Part]:
        if self.first_batch_at is None:
            self.first_batch_at = time.perf_counter()
        self.batches += 1
        return await super().decode_batch(batches)


async def project(settings: Settings, events: int, deadline_s: float) -> tuple[Timing, int]:
    """Run the users projector until its checkpoints sum to ``events``; the timing and the
    number of records dead-lettered (from the DLQ counter in Redis)."""
    engine = projector_engine(
        settings.sqlalchemy_url,
        pool_size=settings.apply_concurrency + 1,
        app="bloghub-bench-projector",
    )
    redis = make_redis(settings.redis_url.get_secret_value())
    dead = DeadLetters(bootstrap=settings.kafka_bootstrap, prefix=settings.prefix, redis=redis)
    watcher = await asyncpg.connect(settings.asyncpg_dsn)
    await dead.start()
    projector = UsersProjector.build(engine, settings, generation=1, cache=None)
    runner = TimedRunner(
        projector,
        config=RunnerConfig.from_settings(settings),
        registry=registry,
        dead_letters=dead,
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(runner.run(stop), name="bench:projector")
    try:
        while True:
            reached = int(await watcher.fetchval(CHECKPOINT_SUM, projector.name, 1))
            if reached >= events:
                done = time.perf_counter()
                break
            if task.done():
                task.result()  # raises what stopped the runner
                raise RuntimeError("the projector stopped before reaching the end")
            if time.perf_counter() - started > deadline_s:
                raise Overrun(f"projector: {reached:,} of {events:,} in {deadline_s:.0f}s")
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        dead_count = int(await redis.get(dlq_count_key(settings.prefix, projector.name)) or 0)
        await redis.delete(dlq_count_key(settings.prefix, projector.name))
        await dead.close()
        await redis.aclose()
        await watcher.close()
        await engine.dispose()
    first = runner.first_batch_at
    assert first is not None
    timing = Timing(
        events=reached, startup_s=first - started, steady_s=done - first, batches=runner.batches
    )
    return timing, dead_count


async def reset_read_model(settings: Settings) -> None:
    """Back to an empty read model with no checkpoint, so the next runner starts from offset 0."""
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute(
            "TRUNCATE users_g1.users, public.reservations; "
            "DELETE FROM public.projector_checkpoints;"
        )
    finally:
        await conn.close()


async def profiled(settings: Settings, params: Params) -> tuple[Timing, str, dict[str, float]]:
    """Replay the projection of ``params.profile_events`` under cProfile."""
    await reset_read_model(settings)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        timing, _ = await project(settings, params.profile_events, params.deadline_s)
    finally:
        profiler.disable()
    path = ARTIFACTS / "projector.prof"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(path))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(r"bloghub|sqlalchemy.*(compiler|elements)", 30)
    return timing, out.getvalue(), self_time_by_area(stats)


AREAS = (
    ("sqlalchemy", "/sqlalchemy/"),
    ("asyncpg", "/asyncpg/"),
    ("pydantic", "/pydantic"),
    ("aiokafka", "/aiokafka/"),
    ("structlog", "/structlog/"),
    ("redis", "/redis/"),
    ("bloghub", "/bloghub/"),
    ("asyncio", "/asyncio/"),
)


def self_time_by_area(stats: pstats.Stats) -> dict[str, float]:
    """Self (exclusive) seconds summed per package; C builtins count under 'builtins'."""
    totals: dict[str, float] = {}
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, funcname), (_, _, tottime, *_rest) in table.items():
        area = "other python"
        if filename == "~" and "select.epoll" in funcname:
            area = "idle: waiting on sockets (Postgres, Kafka)"
        elif filename == "~":
            area = "builtins (C): " + funcname.split(" of ")[0].strip("<>{}")[:40]
        else:
            for name, marker in AREAS:
                if marker in filename:
                    area = name
                    break
        totals[area] = totals.get(area, 0.0) + float(tottime)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


async def count_rows(settings: Settings) -> tuple[int, int]:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        users = int(await conn.fetchval("SELECT count(*) FROM users_g1.users"))
        confirmed = int(
            await conn.fetchval(
                "SELECT count(*) FROM public.reservations WHERE kind = 'email' "
                "AND status = 'confirmed'"
            )
        )
    finally:
        await conn.close()
    return users, confirmed


# --- the store's ceiling --------------------------------------------------------------------


async def store_ceiling(settings: Settings, params: Params) -> Timing:
    """The projector's own write per batch (the accounts and their email reservations, the
    same SQL, in transactions like its own), straight from asyncpg on as many connections
    as the runner applies on, with the arrays built beforehand: no Kafka, no decoding, no
    checkpoints. What the store takes at best; the projector cannot beat it."""
    compiler = make_engine(settings.sqlalchemy_url, pool_size=1, app="bloghub-bench-ceiling")
    dialect = compiler.dialect  # only to compile the statement as the engine does
    await compiler.dispose()
    sql = REGISTER_USERS.compile(
        dialect=dialect, schema_translate_map={None: "users_g1"}, render_schema_translate=True
    )
    size, lanes = settings.batch_max_events, settings.apply_concurrency
    at = datetime.now(UTC)
    batches = []
    for start in range(0, params.events, size):
        n = min(size, params.events - start)
        ids = [new_id_str() for _ in range(n)]
        emails = [f"ceiling-{start + i}@example.com" for i in range(n)]
        # Literals the statement binds itself (the status 'confirmed') come from the
        # compiled defaults.
        values = sql.params | {
            "id": ids,
            "email": emails,
            "password_hash": [PASSWORD_HASH] * n,
            "at": [at] * n,
        }
        batches.append([values[k] for k in sql.positiontup or ()])
    conns = [await asyncpg.connect(settings.asyncpg_dsn) for _ in range(lanes)]

    async def lane(conn: asyncpg.Connection, mine: list[list[Any]]) -> None:
        for args in mine:
            async with conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit TO OFF")
                await conn.execute(str(sql), *args)

    try:
        await reset_read_model(settings)
        started = time.perf_counter()
        await asyncio.gather(*(lane(c, batches[i::lanes]) for i, c in enumerate(conns)))
        steady = time.perf_counter() - started
    finally:
        for c in conns:
            await c.close()
    return Timing(events=params.events, startup_s=0.0, steady_s=steady, batches=len(batches))


# --- the report ------------------------------------------------------------------------------


def cpu_figures(
    spent: dict[str, cpu.CpuUse], events: int, cores: int, consume_rate: float
) -> list[Figure]:
    """Where the CPU went, per event, and the rate that cost allows on this machine: a
    projector whose bound is below the goal cannot reach it by waiting less."""
    figures = []
    for phase in ("consume (raw)", "projector", "store ceiling"):
        use = spent[phase]
        parts = use.per_event_us(events)
        figures.append(
            Figure(
                f"CPU per event: {phase}",
                use.machine / events * 1e6,
                "µs",
                detail=", ".join(f"{k} {v:.1f}" for k, v in parts.items() if v >= 0.05)
                + f"; {use.busy_cores:.2f} of {cores} cores busy",
            )
        )
    bound = spent["projector"].bound(events, cores)
    figures += [
        Figure(
            f"projector bound by CPU ({cores} cores all busy)",
            bound,
            "events/s",
            detail="cores / machine CPU per projected event",
        ),
        Figure("ratio bound / consume", bound / consume_rate, "x"),
    ]
    return figures


def describe(t: Timing) -> str:
    return (
        f"{t.steady_s:.2f}s steady + {t.startup_s:.2f}s join; "
        f"{t.batches:,} batches, {t.per_batch:,.0f} events each on average"
    )


async def run(params: Params = Params(), *, profile: bool = False) -> Report:
    report = Report(
        name=NAME,
        title="projector: ProjectorRunner + UsersProjector vs consume-only (events/s)",
        params=asdict(params) | {"profile": profile},
    )
    async with workspace(NAME, migrate=True) as ws:
        settings = ws.settings
        topic = topic_for(settings.prefix, Family.USERS)
        console.print(f"[dim]{NAME}: prefix {ws.prefix}, database {ws.database}[/]")
        seed_s = await seed(settings, topic, params)
        console.print(f"[dim]seeded {params.events:,} events in {seed_s:.1f}s[/]")
        consumed: dict[str, Timing] = {}
        spent: dict[str, cpu.CpuUse] = {}
        for mode in CONSUME_MODES:
            before = cpu.sample()
            consumed[mode] = await consume(settings, topic, params.events, mode, params.deadline_s)
            spent[f"consume ({mode})"] = cpu.used(before, cpu.sample())
            console.print(f"[dim]consume ({mode}): {consumed[mode].rate:,.0f} events/s[/]")
        before = cpu.sample()
        projected, dead = await project(settings, params.events, params.deadline_s)
        spent["projector"] = cpu.used(before, cpu.sample())
        console.print(f"[dim]projector: {projected.rate:,.0f} events/s[/]")
        users, confirmed = await count_rows(settings)
        before = cpu.sample()
        ceiling = await store_ceiling(settings, params)
        spent["store ceiling"] = cpu.used(before, cpu.sample())
        console.print(f"[dim]store ceiling: {ceiling.rate:,.0f} events/s[/]")
        profile_text, profiled_timing = "", None
        areas: dict[str, float] = {}
        if profile:
            profiled_timing, profile_text, areas = await profiled(settings, params)

    base = consumed["raw"]
    report.figures += [
        Figure(
            "consume only (baseline)",
            base.rate,
            "events/s",
            detail=describe(base),
        ),
        Figure(
            "consume + codec.decode",
            consumed["decode"].rate,
            "events/s",
            detail=describe(consumed["decode"]),
        ),
        Figure(
            "consume + decode + registry.materialise",
            consumed["materialise"].rate,
            "events/s",
            detail=describe(consumed["materialise"]),
        ),
        Figure(
            "projector (runner + UsersProjector)",
            projected.rate,
            "events/s",
            goal=GOAL_RATE,
            detail=describe(projected),
        ),
        Figure("ratio projector / consume", projected.rate / base.rate, "x", goal=GOAL_RATIO),
        Figure(
            "ratio projector / consume+materialise",
            projected.rate / consumed["materialise"].rate,
            "x",
        ),
        Figure(
            "store ceiling (the same writes from asyncpg)",
            ceiling.rate,
            "events/s",
            detail=f"{settings.apply_concurrency} connections, no Kafka, no decoding",
        ),
        Figure("ratio store ceiling / consume", ceiling.rate / base.rate, "x"),
        Figure("ratio projector / store ceiling", projected.rate / ceiling.rate, "x"),
    ]
    cores = os.cpu_count() or 1
    if cpu.available():
        report.figures += cpu_figures(spent, params.events, cores, base.rate)
        bar_chart(
            f"CPU per event on this machine ({cores} cores), µs",
            {
                phase: spent[phase].per_event_us(params.events)
                for phase in ("consume (raw)", "projector", "store ceiling")
            },
            "µs",
        )
    report.checks += [
        Check(
            "users_g1.users rows == events",
            users == params.events,
            f"{users:,} rows for {params.events:,} events",
        ),
        Check(
            "confirmed email reservations == events",
            confirmed == params.events,
            f"{confirmed:,} confirmed",
        ),
        Check("nothing dead-lettered", dead == 0, f"{dead:,} dead letters"),
    ]
    report.raw = {
        "cpu_s": {phase: asdict(use) for phase, use in spent.items()},
        "seed_s": seed_s,
        "consume": {m: asdict(t) for m, t in consumed.items()},
        "projector": asdict(projected),
        "store_ceiling": asdict(ceiling),
    }
    report.notes.append(
        f"batch_max_events={settings.batch_max_events}, batch_max_wait_ms="
        f"{settings.batch_max_wait_ms}, {settings.topic_partitions} partitions; rates are "
        "measured from the first batch in hand to the last event done"
    )
    if profiled_timing is not None:
        report.raw["profile"] = {
            "events": profiled_timing.events,
            "steady_s": profiled_timing.steady_s,
            "self_time_by_area_s": areas,
            "top": profile_text,
        }
        total = sum(areas.values()) or 1.0
        console.print(
            f"[bold]profile[/] ({profiled_timing.events:,} events under cProfile, "
            f"{profiled_timing.rate:,.0f} events/s profiled); self time by area:"
        )
        for area, seconds in list(areas.items())[:14]:
            console.print(f"  {area:<48} {seconds:7.2f}s  {100 * seconds / total:5.1f}%")
        console.print(profile_text, markup=False, highlight=False)
        report.notes.append(f"cProfile dump: {ARTIFACTS / 'projector.prof'}")
    elif projected.rate < GOAL_RATE or projected.rate / base.rate < GOAL_RATIO:
        report.notes.append("below goal: `python -m bench projector --profile` shows where")
    return report
