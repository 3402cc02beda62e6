"""Shared plumbing: a private topic prefix and database per benchmark, quiet logs, and the
report (a rich table on the console, JSON under ``artifacts/bench/``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiokafka
import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from opensearchpy.exceptions import OpenSearchException
from pydantic import SecretStr
from redis.exceptions import RedisError
from rich.console import Console
from rich.table import Table

from bloghub.adapters.kafka import delete_topics, ensure_topics
from bloghub.adapters.opensearch import make_opensearch
from bloghub.adapters.postgres.databases import drop_database
from bloghub.adapters.redis import make_redis
from bloghub.cli import upgrade_database
from bloghub.settings import Mode, Settings

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "bench"
ADMIN_DSN = os.environ.get(
    "BLOGHUB_BENCH_ADMIN_DSN", "postgresql://bloghub:bloghub@127.0.0.1:5432/bloghub"
)

console = Console()
if not console.is_terminal:
    console.width = 132  # a pipe or a log file: do not squeeze the tables into 80 columns


def quiet_logs() -> None:
    """Warnings and errors only, on stderr: the runtime's info lines would bury the tables."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # A topic created a moment ago answers its first produce requests with NotLeader; the
    # sender retries on its own (a send that finally fails still raises), so its per-retry
    # warnings would only interleave with the tables.
    logging.getLogger("aiokafka.producer.sender").setLevel(logging.ERROR)


# --- the private workspace -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workspace:
    settings: Settings
    database: str

    @property
    def prefix(self) -> str:
        return self.settings.prefix


def _database_url(database: str) -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def wait_for_services(bootstrap: str, *, timeout_s: float = 90.0) -> None:
    """Wait, bounded, until Kafka and PostgreSQL answer (they may be starting up)."""
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
            await conn.close()
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
            try:
                await admin.start()
                await admin.list_topics()
            finally:
                await admin.close()
            return
        except (OSError, KafkaError, asyncpg.PostgresError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"services not reachable after {timeout_s:.0f}s") from exc
            if not told:
                console.print(f"[yellow]waiting for Kafka and PostgreSQL: {exc!r}[/]")
                told = True
            await asyncio.sleep(2)


@contextlib.asynccontextmanager
async def workspace(name: str, *, migrate: bool) -> AsyncIterator[Workspace]:
    """A fresh topic prefix (catalog created with ``ensure_topics``) and a fresh database
    (migrated to head if ``migrate``); the database, the topics, and the search indexes
    and Redis keys of the prefix are dropped afterwards (left, every run added a dozen
    indexes to the cluster's shard budget)."""
    run = secrets.token_hex(4)
    database = f"bloghub_bench_{name}_{run}"
    settings = Settings(
        mode=Mode.TEST,
        prefix=f"bench-{name}-{run}",
        database_url=SecretStr(_database_url(database)),
    )
    await wait_for_services(settings.kafka_bootstrap)
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    try:
        if migrate:
            # Alembic's env runs its own event loop, so it needs a thread of its own.
            await asyncio.to_thread(upgrade_database, settings)
        await ensure_topics(
            settings.kafka_bootstrap,
            settings.prefix,
            partitions=settings.topic_partitions,
            replication=settings.topic_replication,
        )
        yield Workspace(settings=settings, database=database)
    finally:
        await _drop_database(database)
        await _delete_topics(settings.kafka_bootstrap, settings.prefix)
        await _delete_the_rest(settings)


async def _drop_database(database: str) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await drop_database(admin, database)
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    try:
        await delete_topics(bootstrap, prefix)
    except (KafkaError, OSError) as exc:
        console.print(f"[yellow]could not delete the topics of {prefix}: {exc!r}[/]")


async def _delete_the_rest(settings: Settings) -> None:
    """The prefix's search indexes and Redis keys (the projectors and the API made them)."""
    search = make_opensearch(settings.opensearch_url)
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        await search.indices.delete(index=f"{settings.prefix}-*", ignore_unavailable=True)
        async for key in redis.scan_iter(match=f"{settings.prefix}:*", count=1000):
            await redis.delete(key)
    except (OSError, RedisError, OpenSearchException) as exc:
        console.print(f"[yellow]could not clean up after {settings.prefix}: {exc!r}[/]")
    finally:
        await search.close()
        await redis.aclose()


# --- measuring -------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# --- the report ------------------------------------------------------------------------------


class Verdict(StrEnum):
    PASS = "PASS"
    BELOW = "BELOW"
    OK = "OK"
    FAILED = "FAILED"
    INFO = ""


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure; with ``goal`` it is judged (``value >= goal`` is PASS)."""

    label: str
    value: float
    unit: str
    goal: float | None = None
    detail: str = ""

    @property
    def verdict(self) -> Verdict:
        if self.goal is None:
            return Verdict.INFO
        return Verdict.PASS if self.value >= self.goal else Verdict.BELOW

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "goal_min": self.goal,
            "verdict": self.verdict.value or None,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Check:
    """A correctness check: when it fails, the figures of the run mean nothing."""

    label: str
    ok: bool
    detail: str

    @property
    def verdict(self) -> Verdict:
        return Verdict.OK if self.ok else Verdict.FAILED


@dataclass
class Report:
    name: str
    title: str
    params: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_s: float = field(default_factory=time.perf_counter)

    @property
    def verdict(self) -> Verdict:
        if any(not c.ok for c in self.checks):
            return Verdict.FAILED
        if any(f.verdict is Verdict.BELOW for f in self.figures):
            return Verdict.BELOW
        return Verdict.PASS

    def show(self) -> None:
        table = Table(title=self.title, title_justify="left", show_lines=False)
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_column("goal", justify="right")
        table.add_column("verdict", justify="center")
        table.add_column("detail", overflow="fold")
        for fig in self.figures:
            table.add_row(
                fig.label,
                _fmt(fig.value, fig.unit),
                "" if fig.goal is None else f">= {_fmt(fig.goal, fig.unit)}",
                self.verdict_cell(fig),
                fig.detail,
            )
        for check in self.checks:
            table.add_row(check.label, "", "", _styled(check.verdict), check.detail)
        console.print(table)
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        console.print(f"[dim]{params}[/]")
        for note in self.notes:
            console.print(f"[dim]{note}[/]")
        console.print(f"overall: {_styled(self.verdict)}\n")

    def verdict_cell(self, fig: Figure) -> str:
        """What the verdict column shows for a figure (a report may judge differently)."""
        return _styled(fig.verdict)

    def write(self) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}.json"
        doc = {
            "benchmark": self.name,
            "title": self.title,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(time.perf_counter() - self.started_s, 3),
            "verdict": self.verdict.value,
            "params": self.params,
            "figures": [f.as_json() for f in self.figures],
            "checks": [{"label": c.label, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "raw": self.raw,
            "notes": self.notes,
            "environment": environment(),
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return path


def bar_chart(title: str, rows: dict[str, dict[str, float]], unit: str, width: int = 48) -> None:
    """Horizontal bars on the console, one block per row, one bar per part of it, all on
    one scale; the row's total closes each block."""
    peak = max((sum(parts.values()) for parts in rows.values()), default=0.0) or 1.0
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column("what")
    table.add_column("bar")
    table.add_column("value", justify="right")
    for row, parts in rows.items():
        table.add_row(f"[bold]{row}[/]", "", "")
        for part, value in parts.items():
            cells = round(width * value / peak)
            table.add_row(f"  {part}", "[cyan]" + "█" * cells + "[/]", f"{value:,.1f} {unit}")
        total = sum(parts.values())
        bar = "█" * round(width * total / peak)
        table.add_row("  total", f"[bold]{bar}[/]", f"{total:,.1f} {unit}")
    console.print(table)


def histogram(title: str, values: Sequence[float], edges: Sequence[float], unit: str) -> None:
    """How ``values`` fall between ``edges`` (ascending), as bars on the console: one row per
    bucket, the last open-ended, each with its count and share."""
    if not values:
        return
    bounds = [*edges, float("inf")]
    counts = [0] * len(bounds)
    for value in values:
        counts[next(i for i, top in enumerate(bounds) if value < top)] += 1
    peak = max(counts) or 1
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column("bucket", justify="right")
    table.add_column("bar")
    table.add_column("count", justify="right")
    low = 0.0
    for top, count in zip(bounds, counts, strict=True):
        label = f"{low:g}-{top:g} {unit}" if top != float("inf") else f"≥ {low:g} {unit}"
        bar = "[cyan]" + "█" * round(40 * count / peak) + "[/]"
        table.add_row(label, bar, f"{count:,} ({count / len(values):.0%})")
        low = top
    console.print(table)


def _fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("/s", "msg/s", "events/s"):
        return f"{value:,.0f} {unit}"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.2f} {unit}".rstrip()


def _styled(verdict: Verdict) -> str:
    colour = {
        Verdict.PASS: "green",
        Verdict.OK: "green",
        Verdict.BELOW: "yellow",
        Verdict.FAILED: "bold red",
    }.get(verdict)
    return f"[{colour}]{verdict.value}[/]" if colour else verdict.value


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "aiokafka": getattr(aiokafka, "__version__", "?"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "src")),
    }


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


async def topic_size(bootstrap: str, topic: str) -> int:
    """Records in ``topic``: the sum of its partitions' end offsets (nothing is ever deleted)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return int(sum(ends.values()))
