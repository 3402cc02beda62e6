"""Replay throughput: ``bloghub replay`` (ops/replay.py, the code operators run) over a log
of ``--events`` events (1M by default), each projector on its own and then all together.

The log of a fresh prefix is filled with user registrations (sealed, as the API writes
them, via bench/projector.py's seeding) and articles' histories (drafts, edits, publishes,
withdrawals, deletes), in the proportion ``Params.article_share``. Each run builds a new
generation with ``--no-swap`` and is timed from the replay's start to its last event; the
progress the replay publishes is sampled every second and drawn as a chart of progress
over time (``artifacts/bench/replay.svg``). Afterwards each built generation must hold
what its checkpoints say, or the run FAILED.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tests.support import ArticleBook, append_events, article_history

from bench.projector import Params as SeedParams
from bench.projector import seed
from bench.support import ARTIFACTS, Check, Figure, Report, rate, workspace
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.ops.generations_admin import drop_generation
from bloghub.ops.replay import ReplayPlan, building_stores, close_stores, replay
from bloghub.ops.replay_progress import ReplayProgress
from bloghub.projections.catalog import PROJECTOR_FAMILIES, PROJECTORS
from bloghub.settings import Settings

NAME = "replay"
GOAL_ALL_S = 300.0  # every projector over 1M events in under 5 minutes


@dataclass(frozen=True, slots=True)
class Params:
    events: int = 1_000_000
    article_share: float = 0.2
    workers: int = 2


Trace = list[tuple[float, dict[str, int]]]


async def fill(settings: Settings, params: Params) -> dict[str, int]:
    """The log: registrations and article histories; events per family."""
    articles = int(params.events * params.article_share)
    users = params.events - articles
    await seed(settings, topic_for(settings.prefix, Family.USERS), SeedParams(events=users))
    log = EventLog.from_settings(settings, timeout_s=30)
    await log.start()
    try:
        rng, done = random.Random(11), 0
        tags = [f"tag{i}" for i in range(40)]
        while done < articles:  # many authors, so the article events spread over partitions
            part = article_history(ArticleBook(), rng, events=min(500, articles - done), tags=tags)
            await append_events(log, part, chunk=500)
            done += len(part)
    finally:
        await log.close()
    return {"users": users, "articles": articles}


async def timed_replay(settings: Settings, names: list[str], workers: int) -> tuple[float, Trace]:
    """Seconds from start to the last event, and the progress sampled along the way."""
    trace: Trace = []
    started = time.perf_counter()

    def sample(progress: object) -> None:
        assert isinstance(progress, list | tuple)
        figures = {p.projector: p.done for p in progress if isinstance(p, ReplayProgress)}
        trace.append((time.perf_counter() - started, figures))

    plan = ReplayPlan(names=names, workers=workers, swap=False, every_s=1.0)
    await replay(settings, plan, show=sample, stop=asyncio.Event())
    return time.perf_counter() - started, trace


async def drop_built(settings: Settings, names: list[str], generation: int) -> None:
    stores = building_stores(settings, pool_size=1)
    try:
        for name in names:
            await drop_generation(stores, name, generation)
    finally:
        await close_stores(stores)


def svg_chart(traces: dict[str, Trace], path: Path) -> None:
    """Events done over time, one line per projector and run (no plotting dependency)."""
    w, h, pad = 720, 360, 48
    lines = [
        (f"{run}:{name}", [(t, f[name]) for t, f in trace if name in f])
        for run, trace in traces.items()
        for name in sorted({n for _, f in trace for n in f})
    ]
    t_max = max((t for _, pts in lines for t, _ in pts), default=1.0) or 1.0
    y_max = max((v for _, pts in lines for _, v in pts), default=1) or 1
    colours = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a", "#e16f24"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{pad}" y="20">replay progress: events done over seconds</text>',
        f'<text x="{pad}" y="{h - 10}">0 s … {t_max:.0f} s</text>',
        f'<text x="4" y="{pad}">{y_max:,}</text>',
    ]
    for i, (label, pts) in enumerate(lines):
        colour = colours[i % len(colours)]
        coords = " ".join(
            f"{pad + (w - 2 * pad) * t / t_max:.1f},{h - pad - (h - 2 * pad) * v / y_max:.1f}"
            for t, v in pts
        )
        out.append(f'<polyline fill="none" stroke="{colour}" points="{coords}"/>')
        out.append(f'<text x="{w - 190}" y="{pad + 14 * i}" fill="{colour}">{label}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


async def run(params: Params | None = None) -> Report:
    params = params or Params()
    names = list(PROJECTORS)
    report = Report(NAME, f"Replay over {params.events:,} events", asdict(params))
    async with workspace(NAME, migrate=True) as ws:
        settings = ws.settings
        seeded = await fill(settings, params)
        report.raw["seeded"] = seeded
        traces: dict[str, Trace] = {}
        for name in names:
            seconds, traces[name] = await timed_replay(settings, [name], params.workers)
            count = consumed(name, seeded)
            report.figures.append(
                Figure(
                    f"{name} alone",
                    rate(count, seconds),
                    "events/s",
                    detail=f"{count:,} events in {seconds:.1f} s",
                )
            )
            await drop_built(settings, [name], 2)
        seconds, traces["all"] = await timed_replay(settings, names, params.workers)
        total = sum(seeded.values())
        report.figures.append(
            Figure(
                "all together",
                rate(total, seconds),
                "events/s",
                goal=total / GOAL_ALL_S,
                detail=f"{total:,} events in {seconds:.1f} s (goal: under {GOAL_ALL_S:.0f} s)",
            )
        )
        last = traces["all"][-1][1] if traces["all"] else {}
        # Each projector must have applied exactly what was seeded into the families it reads.
        short = {n: last.get(n) for n in names if last.get(n, 0) != consumed(n, seeded)}
        report.checks.append(Check("every event applied", not short, f"done {last} of {seeded}"))
        report.raw["traces"] = {k: [(round(t, 2), f) for t, f in v] for k, v in traces.items()}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    svg_chart(traces, ARTIFACTS / "replay.svg")
    report.notes.append(f"chart: {ARTIFACTS / 'replay.svg'}")
    return report


def consumed(name: str, seeded: dict[str, int]) -> int:
    """The events of the log that projector ``name`` reads: those of its families."""
    return sum(seeded.get(family.value, 0) for family in PROJECTOR_FAMILIES[name])


def scaled(events: int) -> Params:
    return replace(Params(), events=events)
