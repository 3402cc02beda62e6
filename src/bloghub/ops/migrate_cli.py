"""The ``bloghub migrate`` command line around ops/migrate.py (phases, fill),
ops/migration_validator.py and ops/migration_repair.py."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from bloghub import event_loop
from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.migrations import Migration, all_migrations, shown_url
from bloghub.cli_errors import say_refused
from bloghub.errors import Transient, Unavailable
from bloghub.events.topics import REPAIR, topic_for
from bloghub.migration_phases import MigrationRefused, Phase, PhaseRefused, Store, reads_from
from bloghub.ops.generations_admin import LogEnds
from bloghub.ops.migrate import (
    FillPlan,
    MigrationStores,
    abort,
    fill,
    migration_of,
    migration_stores,
    move,
    progress_of,
    start,
    target_reason,
)
from bloghub.ops.migration_repair import run_repairs
from bloghub.ops.migration_validator import Pair, changed_pass, full_pass, report
from bloghub.ops.replay_progress import ReplayProgress
from bloghub.projections.backoff import wait_any
from bloghub.projections.worker import install_stop_signals
from bloghub.settings import Settings

USAGE = (
    "bloghub migrate start NAME --to URL [--no-advance]\n"
    "       bloghub migrate phase NAME N | fill NAME | abort NAME | status\n"
    "       bloghub migrate validate NAME [--since ISO_TIME] [--every S]\n"
    "       bloghub migrate repair"
)
# Incremental passes look this far before the last pass began: a row applied late (the
# projector behind) carries the time of its event, not of its write.
OVERLAP = timedelta(minutes=5)
# How a target that cannot be reached fails (translated or not).
UNREACHABLE = (Transient, Unavailable, SQLAlchemyError, OSError)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate", help="move a projector's read model to another database", usage=USAGE
    )
    parser.add_argument(
        "action", choices=["start", "phase", "fill", "abort", "status", "validate", "repair"]
    )
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--to", help="the target database URL (start)")
    parser.add_argument("--no-advance", action="store_true", help="stay in phase 1 once filled")
    parser.add_argument(
        "--since",
        type=_iso_time,
        help="validate rows changed since this time (ISO 8601; UTC unless it names a zone)",
    )
    parser.add_argument(
        "--every", type=float, help="validate again on this interval, in seconds (above 0)"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    console = Console()
    try:
        return event_loop.run(_dispatch(settings, args, console))
    except (MigrationRefused, PhaseRefused, ValueError) as exc:
        return say_refused(exc)


async def _dispatch(settings: Settings, args: argparse.Namespace, console: Console) -> int:
    # An option given to an action that does not take it is refused, not ignored.
    given = {
        "--to": args.to is not None,
        "--no-advance": args.no_advance,
        "--since": args.since is not None,
        "--every": args.every is not None,
    }
    takes = {"start": {"--to", "--no-advance"}, "validate": {"--since", "--every"}}
    stray = [o for o, set_ in given.items() if set_ and o not in takes.get(args.action, set())]
    if stray:
        raise ValueError(f"{args.action} takes no {', '.join(stray)}")
    stop = asyncio.Event()
    install_stop_signals(stop)
    if args.action == "repair":
        repairs = topic_for(settings.prefix, REPAIR)
        console = Console()
        console.print(
            f"repairing the rows `migrate validate` sends to {repairs} until stopped "
            "(each repair is logged as repair.fixed)",
            highlight=False,
            markup=False,
        )
        await run_repairs(settings, stop)
        console.print("stopped: what was repaired is committed; run it again to go on")
        return 0
    rest: list[str] = list(args.rest)
    if args.every is not None and not args.every > 0:  # also NaN
        raise ValueError("--every is the seconds between passes: more than 0")
    if args.since is not None and args.since > datetime.now(UTC):
        # Nothing has changed since then: a pass would compare only what has no updated_at.
        raise ValueError(f"--since {args.since.isoformat()} is in the future")
    wanted = {"status": 0, "phase": 2}.get(args.action, 1)
    if len(rest) != wanted:
        raise ValueError(f"usage:\n{USAGE}")
    async with migration_stores(settings) as ms:
        if args.action == "status":
            await _status(ms, console)
            return 0
        name = rest[0]
        if args.action == "start":
            return await _start(ms, name, args, console, stop)
        if args.action == "phase":
            if not rest[1].isdigit() or int(rest[1]) not in {int(p) for p in Phase}:
                raise ValueError("a phase is 1, 2, 3 or 4")
            migration = await move(ms, name, Phase(int(rest[1])))
            console.print(_said(migration))
            return 0
        if args.action == "fill":
            plan = FillPlan(advance=False)
            done = await fill(ms, name, plan, show=_shown(console), stop=stop)
            _say_stopped(console, stop, f"bloghub migrate fill {name}")
            return 0 if done.state == "caught up" else 1
        if args.action == "abort":
            await abort(ms, name)
            console.print(f"{name}: migration forgotten (the target's tables are left as they are)")
            return 0
        return await _validate(ms, name, args, console, stop)


async def _start(
    ms: MigrationStores, name: str, args: argparse.Namespace, console: Console, stop: asyncio.Event
) -> int:
    if not args.to:
        raise ValueError("start needs --to URL (the target database)")
    migration = await start(ms, name, args.to)
    target = shown_url(migration.target_url)
    console.print(f"{name}: migrating generation {migration.generation} to {target}")
    if migration.phase is not Phase.SOURCE_ONLY:
        console.print(_said(migration))
        return 0
    plan = FillPlan(advance=not args.no_advance)
    done = await fill(ms, name, plan, show=_shown(console), stop=stop)
    console.print(_said(await migration_of(ms.stores, name)))
    _say_stopped(console, stop, f"bloghub migrate start {name} --to …")
    return 0 if done.state in ("phase 2", "caught up") else 1


def _say_stopped(console: Console, stop: asyncio.Event, again: str) -> None:
    if stop.is_set():
        console.print(
            f"stopped: the target keeps what it applied; `{again}` again resumes the fill",
            highlight=False,
            markup=False,
        )


def _iso_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (2026-12-06T08:00:00+00:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def _validate(
    ms: MigrationStores, name: str, args: argparse.Namespace, console: Console, stop: asyncio.Event
) -> int:
    settings = ms.stores.settings
    since: datetime | None = args.since
    total = 0
    while True:
        migration = await migration_of(ms.stores, name)
        pair = Pair(migration, ms.stores.engine, ms.engine(Store.TARGET, migration))
        began = datetime.now(UTC)
        try:
            found = await (changed_pass(pair, since) if since else full_pass(pair))
        except UNREACHABLE as exc:
            await _dropped(ms)
            said = f"cannot reach {shown_url(migration.target_url)}: {target_reason(exc)}"
            if args.every is None:
                raise MigrationRefused(f"{said} (the target of {name})") from exc
            # Validating on an interval outlives an outage: the next pass tries again.
            console.print(f"{name}: {said}; trying again in {args.every:g} s", highlight=False)
            await wait_any(args.every, stop)
            if stop.is_set():
                return 1
            continue
        await report(settings.kafka_bootstrap, settings.prefix, found)
        for d in found:
            console.print(
                f"{d.kind}: {d.table} {d.key}", highlight=False, markup=False, soft_wrap=True
            )
        total += len(found)
        console.print(
            f"{name}: {_compared(pair, since)}, {len(found)} differences sent for repair",
            highlight=False,
        )
        if args.every is None or stop.is_set():
            return 0 if total == 0 else 1
        since = began - OVERLAP
        await wait_any(args.every, stop)
        if stop.is_set():
            return 0 if total == 0 else 1


def _compared(pair: Pair, since: datetime | None) -> str:
    """What a pass compared: a table without ``updated_at`` is compared whole, as nothing
    tells which of its rows changed since."""
    if since is None:
        return "every row compared"
    when = since.isoformat()
    if len(pair.untimed) == len(pair.tables):
        return f"every row compared (no table has updated_at to tell what changed since {when})"
    whole = ", ".join(t.name for t in pair.untimed)
    also = f", and every row of {whole} (no updated_at)" if whole else ""
    return f"rows changed since {when} compared{also}"


async def _status(ms: MigrationStores, console: Console) -> None:
    async with translated(), ms.stores.engine.connect() as conn:
        found = await all_migrations(conn)
    if not found:
        console.print("no migrations: `bloghub migrate start NAME --to URL` starts one")
        return
    # Names and URLs fold onto more lines rather than lose their end on a narrow output.
    table = Table()
    for name in ("projector", "gen", "phase", "reads from", "target"):
        table.add_column(name, overflow="fold")
    for name in ("source applied", "target applied", "log"):
        table.add_column(name, justify="right", overflow="fold")
    settings = ms.stores.settings
    ends = LogEnds(settings.kafka_bootstrap, settings.prefix)
    await ends.start()
    try:
        for m in found.values():
            src, total = await progress_of(ms, ends, m, Store.SOURCE)
            # One target that cannot be reached hides none of the other migrations.
            try:
                tgt, later_total = await progress_of(ms, ends, m, Store.TARGET)
                tgt_shown = f"{tgt:,}"
                # The log, as measured after both: never less than either has applied.
                total = max(total, later_total)
            except UNREACHABLE as exc:
                tgt_shown = f"unreachable: {target_reason(exc)}"
            finally:
                await _dropped(ms)
            table.add_row(
                m.projector,
                str(m.generation),
                str(int(m.phase)),
                str(reads_from(m.phase)),
                shown_url(m.target_url),
                f"{src:,}",
                tgt_shown,
                f"{total:,}",
                style="bold yellow" if tgt_shown.startswith("unreachable") else None,
            )
    finally:
        await ends.close()
    console.print(table)


async def _dropped(ms: MigrationStores) -> None:
    """Each migration has its own target: the engine of the last one goes."""
    if ms.target is not None:
        await ms.target.dispose()
        ms.target = None


def _said(m: Migration) -> str:
    return f"{m.projector}: phase {int(m.phase)}, reads from the {reads_from(m.phase)}"


def _shown(console: Console) -> Any:
    def show(p: ReplayProgress) -> None:
        console.print(
            f"{p.projector} g{p.generation}: {p.state}, {p.done:,} of {p.total:,} applied",
            highlight=False,
        )

    return show
