"""What a like's and a draft create's round trips alone cost through the clients bloghub
uses: the floor under the like and draft create pairs of ``bench http``.

Three servers started as ``bench http`` starts them (uvicorn, uvloop, httptools, one
process), the projectors running beside them as in ``make run``:

- ``bare``: the bare Starlette ``PUT /like`` and ``POST /drafts`` of ``bench http``;
- ``floor``: a bare Starlette app whose ``PUT /like`` makes the like's four round trips
  one by one through the same clients and nothing else (``bench/http_apps.py: floor``):
  the Redis count with the session reads, the target's read from PostgreSQL, the Kafka
  append of a real ``article.liked`` (acknowledged by all in-sync replicas), the Redis
  remembering; and whose ``POST /drafts`` parses the body as bare's does and makes a
  draft create's three (the count, the append of a real ``article.drafted``, the
  remembering);
- ``bloghub``: the real ``PUT /v1/articles/{id}/like`` and ``POST /v1/articles``.

Each pair is measured with ``wrk -t1 -c16`` in windows alternating ABC CBA. Then, for the
like, one floor server per round trip, each making only that one, so each round trip's
CPU per request shows. ``floor / bare`` is what a pair's goal must clear before any of
bloghub's own work; ``bloghub / floor`` is what that work (auth, checks, coalescing,
read-your-writes, the answer) leaves of it. And ``bare's CPU / floor's CPU`` is the most
the round trips alone could reach were the floor's core busy all the time, waiting on
nothing: against the pair's goal, it says whether any server making them through these
clients could.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from bench import http
from bench.http_apps import BODIES_ENV, FLOOR_STEPS, FLOOR_STEPS_ENV
from bench.support import ARTIFACTS, Check, Figure, Report, console, median, workspace
from bloghub.ids import new_id_str
from bloghub.settings import Settings

NAME = "floor"
CONNECTIONS = 16
WARMUP_S = 2.0
WINDOW_S = 6.0
ROUNDS = 2


@dataclass(frozen=True, slots=True)
class Measured:
    side: str
    rate: float
    cpu_us: float
    wrk_share: float
    errors: int


def _window(server: http.Server, target: http.Target, seconds: float) -> Measured:
    before = server.cpu_s()
    w = http.run_wrk(server.url, target, CONNECTIONS, seconds, 0)
    cpu = server.cpu_s() - before
    return Measured(
        "",
        w.rate,
        cpu / w.requests * 1e6 if w.requests else 0.0,
        w.wrk_cpu_s / w.elapsed_s,
        w.errors,
    )


@dataclass(frozen=True, slots=True)
class Kind:
    """One of the writes compared: what each side is sent, and the pair's goal."""

    name: str
    goal: float
    bare: http.Target
    bloghub: http.Target


def kinds(seed: http.Seed) -> list[Kind]:
    """The like and the draft create, as ``bench http`` sends them (its pairs)."""
    by_name = {p.name: p for p in http.pairs(seed, http.Params())}
    return [
        Kind(name, by_name[name].goal, by_name[name].bare, by_name[name].bloghub)
        for name in ("like", "draft create")
    ]


Rounds = dict[str, dict[str, list[Measured]]]  # kind, then side


def measure_all(settings: Settings) -> tuple[Rounds, dict[str, Measured], dict[str, float]]:
    logs = ARTIFACTS / "floor-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = http.bloghub_env(settings)
    project = [sys.executable, "-m", "bloghub.cli", "project"]
    rounds: Rounds = {}
    single: dict[str, Measured] = {}
    with (
        http.spawned(project, env, logs / "projectors.log"),
        http.uvicorn_server(http.BLOGHUB, 1, env, logs / "bloghub.log", "/healthz") as ours,
    ):
        seed = http.seed(ours.url, http.Params())
        bodies = logs / "bare-bodies.json"
        bodies.write_text(json.dumps({"detail": "{}", "profile": "{}", "ranking": "{}"}))
        ids = {
            "BENCH_FLOOR_ARTICLE": seed.article_id,
            "BENCH_FLOOR_AUTHOR": seed.author_id,
            "BENCH_FLOOR_USER": new_id_str(),
        }
        writes = kinds(seed)
        with (
            http.uvicorn_server(
                "bare", 1, {BODIES_ENV: str(bodies)}, logs / "bare.log", "/profile"
            ) as bare,
            http.uvicorn_server("floor", 1, env | ids, logs / "floor.log", "/like") as floor,
        ):
            for kind in writes:
                rounds[kind.name] = _alternated(
                    kind,
                    {
                        "bare": (bare, kind.bare),
                        "floor": (floor, kind.bare),
                        "bloghub": (ours, kind.bloghub),
                    },
                )
        plain = writes[0].bare
        for step in FLOOR_STEPS:
            only = env | ids | {FLOOR_STEPS_ENV: step}
            with http.uvicorn_server("floor", 1, only, logs / "floor.log", "/like") as one:
                _window(one, plain, WARMUP_S)
                m = _window(one, plain, WINDOW_S)
            single[step] = Measured(step, m.rate, m.cpu_us, m.wrk_share, m.errors)
            console.print(
                f"[dim]floor, {step} only: {m.rate:9,.0f} req/s  {m.cpu_us:6.0f} us CPU/request[/]"
            )
    return rounds, single, {k.name: k.goal for k in writes}


def _alternated(
    kind: Kind, sides: dict[str, tuple[http.Server, http.Target]]
) -> dict[str, list[Measured]]:
    """Each side's windows, ABC CBA after a warm-up window each."""
    measured: dict[str, list[Measured]] = {side: [] for side in sides}
    for server, target in sides.values():
        _window(server, target, WARMUP_S)
    order = list(sides)
    for r in range(ROUNDS):
        for name in order if r % 2 == 0 else order[::-1]:
            server, target = sides[name]
            m = _window(server, target, WINDOW_S)
            measured[name].append(Measured(name, m.rate, m.cpu_us, m.wrk_share, m.errors))
            console.print(
                f"[dim]{kind.name:>12} {name:>8}: {m.rate:9,.0f} req/s  {m.cpu_us:6.0f} us "
                f"CPU/request  wrk {m.wrk_share:4.0%}[/]"
            )
    return measured


async def run() -> Report:
    http.ensure_wrk()
    report = Report(
        name=NAME,
        title="floor: a like's and a draft create's round trips alone, through bloghub's "
        "clients, against bare",
        params={"connections": CONNECTIONS, "window_s": WINDOW_S, "rounds": ROUNDS},
    )
    async with workspace(NAME, migrate=True) as ws:
        await http.counted_articles(ws.settings, http.RANKED)  # the seed waits for a ranking
        rounds, single, goals = await asyncio.to_thread(measure_all, ws.settings)
    for kind, sides in rounds.items():
        report.figures += _figures(kind, sides, goals[kind])
    bare_cpu = median([m.cpu_us for m in rounds["like"]["bare"]])
    for step, m in single.items():
        report.figures.append(
            Figure(
                f"floor, {step} only: server CPU per request",
                m.cpu_us,
                "us",
                detail=f"{m.rate:,.0f} req/s; over bare: {m.cpu_us - bare_cpu:+.0f} us",
            )
        )
    every = [m for sides in rounds.values() for ms in sides.values() for m in ms]
    every += single.values()
    errors = sum(m.errors for m in every)
    busy = sum(m.wrk_share >= http.CLIENT_BOUND for m in every)
    report.checks += [
        Check("every answer 2xx", errors == 0, f"{errors:,} errors or non-2xx answers"),
        Check("wrk is not the limit", busy == 0, f"{busy} windows with wrk near a full core"),
    ]
    report.notes.append(
        f"wrk -t1 -c{CONNECTIONS}, {WINDOW_S:g} s windows, ABC CBA; one uvicorn process each "
        "(uvloop, httptools); the projectors in a `bloghub project` process beside them"
    )
    return report


def _figures(kind: str, sides: dict[str, list[Measured]], goal: float) -> list[Figure]:
    rate = {side: median([m.rate for m in ms]) for side, ms in sides.items()}
    cpu = {side: median([m.cpu_us for m in ms]) for side, ms in sides.items()}
    figures: list[Figure] = []
    for side, ms in sides.items():
        figures += [
            Figure(
                f"{kind} {side}: req/s",
                rate[side],
                "/s",
                detail="rounds " + ", ".join(f"{m.rate:,.0f}" for m in ms),
            ),
            Figure(f"{kind} {side}: server CPU per request", cpu[side], "us"),
        ]
    return [
        *figures,
        Figure(f"{kind}: floor / bare", rate["floor"] / rate["bare"], "x", detail="req/s, medians"),
        Figure(
            f"{kind}: bloghub / bare", rate["bloghub"] / rate["bare"], "x", detail="req/s, medians"
        ),
        Figure(
            f"{kind}: bloghub / floor",
            rate["bloghub"] / rate["floor"],
            "x",
            detail="req/s, medians",
        ),
        Figure(
            f"{kind}: the most the floor's CPU allows",
            cpu["bare"] / cpu["floor"],
            "x",
            goal,
            detail=f"bare's server CPU per request / the floor's ({cpu['bare']:.0f} / "
            f"{cpu['floor']:.0f} us): the ratio to bare were the floor's core busy all the "
            f"time and waiting on nothing; the goal is the {kind} pair's",
        ),
    ]
