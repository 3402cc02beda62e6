"""The ``bloghub`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from bloghub import event_loop
from bloghub.cli_errors import (
    EXIT_CODE,
    at_least_one,
    explained,
    quiet_leftovers,
    say_refused,
)
from bloghub.logs import configure_logging
from bloghub.ops import migrate_cli, replay_cli
from bloghub.processes import ending_with_parent, stop_processes
from bloghub.projections.catalog import PROJECTORS
from bloghub.settings import DEV_SECRET_MARKER, Settings, load_settings

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from starlette.applications import Starlette

    from bloghub.adapters.postgres.read_model_upgrades import Reached


# `bloghub run`'s projector processes: one per core, up to two. They share every
# projector's partitions through its consumer group (each told how many, for its lanes:
# runner_config.lane_of); on this 2-core machine two took the counter projector from 0.44x
# to 0.51x of the store's ceiling (`python -m bench counters`). Past two, each holds up to
# twice (lanes + 1) pooled connections per projector (48 by default) for little: the
# topics have 6 partitions, and the API workers want the cores.
DEFAULT_PROJECTOR_PROCESSES = min(len(os.sched_getaffinity(0)), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bloghub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve the HTTP API (and sweep stale key reservations)")
    proj = sub.add_parser("project", help="run projectors (all if none named)")
    proj.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(PROJECTORS)}")
    run = sub.add_parser("run", help="API processes and every projector, side by side")
    for serving in (api, run):
        serving.add_argument(
            "--workers",
            type=at_least_one,
            default=os.cpu_count() or 1,
            help="API processes (default: one per core)",
        )
    run.add_argument(
        "--projectors",
        type=at_least_one,
        default=DEFAULT_PROJECTOR_PROCESSES,
        help="`bloghub project` processes, sharing every projector's partitions "
        f"(default: one per core up to two, here {DEFAULT_PROJECTOR_PROCESSES})",
    )
    sub.add_parser("rank", help="the hot ranking job (one of any number computes)")
    sub.add_parser("topics", help="create the topic catalog (idempotent)")
    sub.add_parser("lag", help="consumer lag of every projector, as a table")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    replay_cli.add_parser(sub)
    migrate_cli.add_parser(sub)
    args = parser.parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings()
        configure_logging(settings)
        if _one_shot(args):
            _quiet_connect_errors()
        return _dispatch(settings, args)
    except Exception as exc:
        # KeyboardInterrupt is no Exception: commands that handle it still do.
        said = explained(exc, settings, args.command)
        if said is None:
            raise
        quiet_leftovers()
        print(f"bloghub {args.command}: {said}", file=sys.stderr, flush=True)
        return EXIT_CODE


def _one_shot(args: argparse.Namespace) -> bool:
    """A command that asks once and answers: if Kafka cannot be reached it says so in its
    one line (``explained``), and aiokafka's own record of the failed connection would be
    a second. Commands that keep running (serving, projecting, replaying, migrating) keep
    those records: they tell an operator what a process is waiting for."""
    if args.command in {"lag", "topics", "db"}:
        return True
    if args.command == "migrate":
        return bool(args.action == "status")
    return bool(args.command == "replay" and args.status)


class _NotKafkaConnectErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable connect to")


def _quiet_connect_errors() -> None:
    from bloghub.adapters.redis.reach import quiet_holds

    logging.getLogger("aiokafka").addFilter(_NotKafkaConnectErrors())
    logging.getLogger("aiokafka.client").addFilter(_NotKafkaConnectErrors())
    quiet_holds()  # Redis's, likewise


async def _database_reachable(settings: Settings) -> None:
    """Raise the driver's error (which ``explained`` says in one line) if PostgreSQL cannot
    be reached: an API process would otherwise fail its start-up with a traceback per
    worker, and ``run`` would print where it serves and then stop."""
    import asyncpg

    conn = await asyncpg.connect(settings.asyncpg_dsn, timeout=5)
    await conn.close()


def _port_taken(settings: Settings) -> str | None:
    """Why the API cannot listen where the settings say, or None. Asked before anything
    starts: ``run`` would otherwise print where it serves and start the projectors (whose
    joining rebalances a running instance's groups), then fail to bind."""
    where = f"{settings.api_host}:{settings.api_port}"
    try:
        # Every address the host names, as the server binds them.
        found = socket.getaddrinfo(
            settings.api_host, settings.api_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        return f"cannot listen on {where}: {exc}: check BLOGHUB_API_HOST"
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    do = "stop what holds it, or set BLOGHUB_API_PORT"
                else:  # not this machine's address, a port below 1024 without the right
                    do = "check BLOGHUB_API_HOST and BLOGHUB_API_PORT"
                return f"cannot listen on {where}: {exc.strerror}: {do}"
    return None


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.command in ("api", "run"):
        event_loop.run(_database_reachable(settings))
        taken = _port_taken(settings)
        if taken is not None:
            print(f"bloghub {args.command}: {taken}", file=sys.stderr, flush=True)
            return EXIT_CODE
    if args.command == "api":
        return _serve(settings, args.workers)
    elif args.command == "project":
        return _project_or_refuse(settings, args.names)
    elif args.command == "run":
        return _run_all(settings, args.workers, args.projectors)
    elif args.command == "rank":
        event_loop.run(_rank(settings))
    elif args.command == "lag":
        event_loop.run(_lag(settings))
    elif args.command == "topics":
        event_loop.run(_topics(settings))
    elif args.command == "db":
        return _upgrade(settings)
    elif args.command == "replay":
        return replay_cli.run(settings, args)
    elif args.command == "migrate":
        return migrate_cli.run(settings, args)
    return 0


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config

    root = Path(__file__).resolve().parents[2]
    config = Config(str(root / "alembic.ini"))
    config.attributes["database_url"] = url
    return config


def upgrade_database(settings: Settings, url: str | None = None) -> list[Reached]:
    """Alembic to its head over the main database, then every read-model change over the
    databases ``bloghub migrate`` moved a generation to (read_model_upgrades.py): what
    was done, or not, in each of those."""
    from alembic import command

    main = url or settings.sqlalchemy_url
    command.upgrade(alembic_config(main), "head")
    return event_loop.run(_reach_targets(main))


async def _reach_targets(url: str) -> list[Reached]:
    from bloghub.adapters.postgres.engine import make_engine
    from bloghub.adapters.postgres.read_model_upgrades import reach_targets

    engine = make_engine(url, pool_size=1, app="bloghub-upgrade")
    try:
        return await reach_targets(engine)
    finally:
        await engine.dispose()


def _upgrade(settings: Settings) -> int:
    """``db upgrade``: exit 2 while a migration's target is left behind (run it again once
    the target is back; its projector waits meanwhile)."""
    reached = upgrade_database(settings)
    for r in reached:
        print(r, file=sys.stderr if r.failed else sys.stdout, flush=True)
    return EXIT_CODE if any(r.failed for r in reached) else 0


def server_config(settings: Settings) -> uvicorn.Config:
    """How ``bloghub api`` and ``bloghub run`` serve the app. The server's own proxy header
    handling is off (it would trust 127.0.0.1, or FORWARDED_ALLOW_IPS, on its own): the app
    applies ``trusted_proxies`` itself."""
    from bloghub.api import http_guard
    from bloghub.api.app import create_app

    http_guard.configure(settings)
    return uvicorn.Config(
        create_app(settings, serving=True),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # its records go through configure_logging's format
        proxy_headers=False,
        # Heads bounded in size and time, bodies in pace (each worker configures its own).
        http=http_guard.GuardedHttp,
        # Live sockets: a bigger message is refused by the protocol before it is buffered.
        ws_max_size=settings.live_max_message_bytes,
    )


def _serve(settings: Settings, workers: int) -> int:
    """One process serves in place; several are uvicorn's workers, each building its app
    (and its clients, caches and subscriptions) from the same environment. Not 0 when the
    one process could not start (its start-up failed, or the port is taken)."""
    if workers == 1:
        server = uvicorn.Server(server_config(settings))
        # Ctrl-C: uvicorn stops as asked, then raises SIGINT again for its default action
        # (a KeyboardInterrupt here). A stop asked for at the terminal is no failure: it
        # ends with 0, as with several workers. (SIGTERM keeps its conventional 143.)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        return 0 if server.started else 3
    uvicorn.run(
        "bloghub.cli:app_from_environment",
        factory=True,
        workers=workers,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # its records go through configure_logging's format
        proxy_headers=False,
        http="bloghub.api.http_guard:GuardedHttp",
        ws_max_size=settings.live_max_message_bytes,
    )
    return 0


def app_from_environment() -> Starlette:
    """The app as an API worker process builds it: settings from the environment."""
    from bloghub.api import http_guard
    from bloghub.api.app import create_app

    settings = load_settings()
    configure_logging(settings)
    http_guard.configure(settings)
    return create_app(settings, serving=True)


async def _lag(settings: Settings) -> None:
    from rich.console import Console

    from bloghub.adapters.postgres.engine import make_engine
    from bloghub.ops.lag import LagReader
    from bloghub.ops.lag_table import render_lag
    from bloghub.ops.monitor import watched_groups

    engine = make_engine(settings.sqlalchemy_url, pool_size=1, app="bloghub-lag")
    reader = LagReader(settings.kafka_bootstrap, settings.prefix)
    await reader.start()
    try:
        watched = await watched_groups(engine, settings.prefix)
        groups = await reader.read({w.group: w.topics for w in watched})
    finally:
        await reader.close()
        await engine.dispose()
    Console().print(render_lag(groups, {w.group: w.state for w in watched}))


async def _topics(settings: Settings) -> None:
    from bloghub.bootstrap import prepare_topics

    await prepare_topics(settings)


def _project_or_refuse(settings: Settings, names: list[str]) -> int:

    from bloghub.projections.worker import UnknownProjector

    try:
        event_loop.run(_project(settings, names))
    except UnknownProjector as exc:
        return say_refused(exc)
    return 0


async def _project(settings: Settings, names: list[str]) -> None:
    from bloghub.heap import settle_heap
    from bloghub.projections.worker import install_stop_signals, run_projectors

    settle_heap()
    stop = asyncio.Event()
    install_stop_signals(stop)
    if names:
        await run_projectors(settings, names, stop)
        return
    # Every projector, and the scheduled jobs beside them; either ending stops both.
    from bloghub.ranking.job import run_ranking

    await asyncio.gather(
        _stopping(run_projectors(settings, names, stop), stop),
        _stopping(run_ranking(settings, stop), stop),
    )


async def _stopping(job: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    try:
        await job
    finally:
        stop.set()


async def _rank(settings: Settings) -> None:
    from bloghub.projections.worker import install_stop_signals
    from bloghub.ranking.job import run_ranking

    stop = asyncio.Event()
    install_stop_signals(stop)
    await run_ranking(settings, stop)


def _run_all(settings: Settings, workers: int, projectors: int) -> int:
    """One machine: ``projectors`` processes each running every projector (their consumer
    groups split the partitions between them, so projection uses more than one core),
    beside ``workers`` API processes (which sweep stale key reservations); they stop
    together."""
    from bloghub.bootstrap import prepare_topics

    event_loop.run(prepare_topics(settings))
    # Each spreads its share of the partitions over its lanes knowing how many share them.
    env = os.environ | {"BLOGHUB_PROJECTOR_PROCESSES": str(projectors)}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "bloghub.cli", "project"],
            env=env,
            preexec_fn=ending_with_parent(signal.SIGTERM),  # it drains, as on a stop
        )
        for _ in range(projectors)
    ]
    print(run_banner(settings, workers, projectors), file=sys.stderr, flush=True)
    try:
        return _serve(settings, workers)
    finally:
        stop_processes(started, grace_s=60)


# Listening on every address: this machine reaches the server on its loopback one.
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def run_banner(settings: Settings, workers: int, projectors: int) -> str:
    """Where ``bloghub run`` serves and how to get into each page. The operator token is
    shown only while it is the development default, which is no secret (it is in the
    source); a token someone chose is never printed, since terminals and logs are kept."""
    host = _LOOPBACK_FOR.get(settings.api_host, settings.api_host)
    base = f"http://{f'[{host}]' if ':' in host else host}:{settings.api_port}"
    token = settings.operator_token.get_secret_value()
    if DEV_SECRET_MARKER in token:
        how = (
            f"operator token {token}\n"
            f"{'':13}(the development default; BLOGHUB_OPERATOR_TOKEN sets your own)"
        )
    else:
        how = "operator token: the value of BLOGHUB_OPERATOR_TOKEN"
    return "\n".join(
        [
            f"bloghub serving on {base} with {workers} API process(es) and {projectors} "
            "projector process(es) beside them",
            f"  API docs   {base}/docs  (Authorize with the access_token of POST /v1/auth/login)",
            f"  dashboard  {base}/ops  {how}",
            f"  readiness  {base}/readyz",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
