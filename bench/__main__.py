"""``python -m bench [producer|projector|article_detail|http|feed ...] [--profile]``: run the named
benchmarks (all by default), print each table and write ``artifacts/bench/<name>.json``.

Exits 1 only when a correctness check FAILED (the figures of that run mean nothing); a goal
that is missed is reported as BELOW and does not change the exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from bench import (
    article_detail,
    counters,
    feed,
    http,
    io_floor,
    live,
    producer,
    projector,
    replay,
    search,
)
from bench.support import Report, Verdict, console, quiet_logs
from bloghub import event_loop
from bloghub.heap import settle_heap

BENCHMARKS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, Report]]] = {
    producer.NAME: lambda args: producer.run(),
    projector.NAME: lambda args: projector.run(profile=args.profile),
    article_detail.NAME: lambda args: article_detail.run(),
    http.NAME: lambda args: http.run(http.params_from(args.pair, args.workers)),
    feed.NAME: lambda args: feed.run(),
    search.NAME: lambda args: search.run(search.scaled(args.articles)),
    counters.NAME: lambda args: counters.run(),
    io_floor.NAME: lambda args: io_floor.run(),
    live.NAME: lambda args: live.run(),
    replay.NAME: lambda args: replay.run(replay.scaled(args.events)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="projector: after the measured run, replay under cProfile and print where time goes",
    )
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        help="http: measure only this pair (detail, profile, 'draft create', ranking, like); "
        "repeatable",
    )
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        default=[],
        help="http: measure only with this many API workers; repeatable",
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="replay: events in the log (default 1M)"
    )
    parser.add_argument(
        "--articles",
        type=int,
        default=100_000,
        help="search: published articles searched over (default 100,000)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    quiet_logs()
    # Prepared as a bloghub worker process is, so baselines and measured code alike run
    # with start-up objects out of the collector's way.
    settle_heap()
    failed = False
    for name in args.names or list(BENCHMARKS):
        console.rule(f"bench {name}")
        report = event_loop.run(BENCHMARKS[name](args))
        report.show()
        path = report.write()
        console.print(f"[dim]wrote {path}[/]")
        failed |= report.verdict is Verdict.FAILED
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
