"""The ``bloghub replay`` command line: argument parsing and rich display around
ops/replay.py (build and switch), ops/verify.py and ops/generations_admin.py."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bloghub import event_loop
from bloghub.cli_errors import at_least_one, say_refused
from bloghub.heap import settle_heap
from bloghub.ops.generations_admin import ReplayRefused, drop_generation, generations_of
from bloghub.ops.replay import (
    ReplayPlan,
    activate_checked,
    building_stores,
    close_stores,
    refuse_migrated,
    replay,
    run_builders,
)
from bloghub.ops.replay_progress import ReplayProgress, read_progress
from bloghub.ops.verify import verify_generations
from bloghub.projections.catalog import PROJECTORS
from bloghub.projections.worker import install_stop_signals
from bloghub.settings import Settings

ACTIONS = {"drop": 2, "verify": 3, "activate": 2}  # action: how many arguments follow
USAGE = (
    "bloghub replay NAME… | --all [--workers N] [--no-swap]\n"
    "       bloghub replay --status\n"
    "       bloghub replay drop NAME GEN [--force] | verify NAME GEN_A GEN_B | activate NAME GEN"
)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "replay", help="rebuild projectors' read models from the log", usage=USAGE
    )
    parser.add_argument("names", nargs="*")
    parser.add_argument("--all", action="store_true", help="every projector")
    parser.add_argument("--workers", type=at_least_one, default=1, help="builder processes")
    parser.add_argument("--no-swap", action="store_true", help="build and stop, no switch")
    parser.add_argument("--status", action="store_true", help="generations and replays")
    parser.add_argument(
        "--force", action="store_true", help="drop: even a generation a running replay builds"
    )
    parser.add_argument("--builder", action="store_true", help=argparse.SUPPRESS)


def run(settings: Settings, args: argparse.Namespace) -> int:
    console = Console()
    try:
        return event_loop.run(_dispatch(settings, args, console))
    except (ReplayRefused, ValueError) as exc:
        return say_refused(exc)


async def _dispatch(settings: Settings, args: argparse.Namespace, console: Console) -> int:
    names: list[str] = list(args.names)
    building = [
        f for f, given in (("--no-swap", args.no_swap), ("--workers", args.workers != 1)) if given
    ]
    if args.status:
        if names or args.all or building or args.force:
            raise ReplayRefused("--status takes no projector names and no other option")
        await _status(settings, console)
        return 0
    if names and names[0] in ACTIONS:
        if args.force and names[0] != "drop":
            raise ReplayRefused(f"--force goes with drop only, not {names[0]}")
        if building:
            verb = "go" if len(building) > 1 else "goes"
            raise ReplayRefused(f"{' and '.join(building)} {verb} with a replay, not {names[0]}")
        return await _action(settings, names[0], names[1:], console, force=args.force)
    if args.force:
        # A mistyped drop line would otherwise rebuild the projector and switch it in.
        raise ReplayRefused("--force goes with drop only: bloghub replay drop NAME GEN --force")
    if args.all and names:
        # Alternatives: a name given with --all by mistake would rebuild every projector.
        raise ReplayRefused(
            f"name the projectors to replay or give --all, not both: {' '.join(names)}"
        )
    names = list(PROJECTORS) if args.all else names
    if not names:
        raise ReplayRefused("name the projectors to replay, or --all")
    stop = asyncio.Event()
    install_stop_signals(stop)
    if args.builder:
        settle_heap()
        await run_builders(settings, names, stop)
        return 0
    plan = ReplayPlan(names=names, workers=args.workers, swap=not args.no_swap)
    with Live(console=console, refresh_per_second=2) as live:
        final = await replay(settings, plan, show=lambda p: live.update(_table(p)), stop=stop)
    if not console.is_terminal:
        console.line()  # Live ends its last table with a line break only on a terminal
    if stop.is_set():
        console.print(stopped_message(final), highlight=False)
    return 0 if all(p.state in ("switched", "built") for p in final) else 1


def stopped_message(final: Sequence[ReplayProgress]) -> str:
    """What a replay stopped by the operator left: running it again resumes only a
    generation still building; a switched one serves already, and a new run would start
    yet another generation from the start of the log."""
    if not final or any(p.state not in ("switched", "built") for p in final):
        return "stopped: run the same command again to resume"
    switched = [f"{p.projector} g{p.generation}" for p in final if p.state == "switched"]
    built = [f"{p.projector} g{p.generation}" for p in final if p.state == "built"]
    said = []
    if switched:
        said.append(
            f"{', '.join(switched)} switched in and serve reads; no projector process was "
            "seen taking over yet (`bloghub project` runs them)"
        )
    if built:
        said.append(f"{', '.join(built)} built, not switched in")
    return f"stopped: {'; '.join(said)}. Nothing to resume."


async def _action(
    settings: Settings, action: str, rest: list[str], console: Console, *, force: bool = False
) -> int:
    takes = {"drop": "NAME GEN", "verify": "NAME GEN_A GEN_B", "activate": "NAME GEN"}[action]
    if len(rest) != ACTIONS[action]:
        given = " ".join(rest) or "nothing"
        raise ReplayRefused(f"{action} takes {takes}, not {given}; usage:\n{USAGE}")
    if bad := [r for r in rest[1:] if not (r.isascii() and r.isdigit())]:
        raise ReplayRefused(f"{action}: a generation is a whole number, not {bad[0]!r}")
    name, gens = rest[0], [int(g) for g in rest[1:]]
    if action == "activate":
        progress = await activate_checked(settings, name, gens[0])
        said = f"{name}: generation {gens[0]} serves reads ({progress.left} behind)"
        if progress.left:
            # Nothing wrote it while it was not active: the projector processes take it
            # from here, and until they have applied those events reads lack them.
            said += "; reads lack those events until the projectors apply them (about a second)"
        console.print(said, soft_wrap=True)
        return 0
    stores = building_stores(settings, pool_size=2)
    try:
        if action == "drop":
            # A migrated projector's generations are the migration's to change.
            await refuse_migrated(stores, [name])
            await drop_generation(stores, name, gens[0], force=force)
            console.print(f"{name}: generation {gens[0]} dropped")
            return 0
        found = await verify_generations(stores, name, gens[0], gens[1])
    finally:
        await close_stores(stores)
    for line in found:
        console.print(line, markup=False, highlight=False)
    console.print(
        f"{name}: g{gens[0]} and g{gens[1]} "
        + ("are equal" if not found else f"differ ({len(found)} findings)")
    )
    return 0 if not found else 1


async def _status(settings: Settings, console: Console) -> None:
    stores = building_stores(settings, pool_size=1)
    try:
        rows = [(n, g, s) for n in PROJECTORS for g, s in (await generations_of(stores, n)).items()]
        progress = await read_progress(stores.redis, settings.prefix, [(n, g) for n, g, _ in rows])
    finally:
        await close_stores(stores)
    table = Table("projector", "generation", "registry", "replay", "done", "total", "ETA")
    for name, gen, state in rows:
        p = progress.get((name, gen))
        table.add_row(
            name,
            str(gen),
            state,
            p.state if p else "",
            f"{p.done:,}" if p else "",
            f"{p.total:,}" if p else "",
            _eta(p.eta_s) if p else "",
        )
    console.print(table)


def _table(progress: Sequence[ReplayProgress]) -> Table:
    table = Table("projector", "gen", "state", "done", "left", "events/s", "ETA", "%")
    for p in progress:
        pct = 100.0 * p.done / p.total if p.total else 100.0
        rate = f"{p.events_per_s:,.0f}" if p.events_per_s is not None else "…"
        table.add_row(
            p.projector,
            str(p.generation),
            p.state,
            f"{p.done:,}",
            f"{p.left:,}",
            rate,
            _eta(p.eta_s),
            f"{pct:.1f}",
        )
    return table


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
