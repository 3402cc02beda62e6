"""A projector whose effect is not idempotent: it adds each batch's number of events to a
per-partition count. Applying an event twice counts it twice, so only the runner's
checkpoint (saved in the batch's own transaction, and checked before applying) keeps the
count equal to the log. The exactly-once tests run it with the real runner, in real worker
processes, over the real Kafka and PostgreSQL:

    python -m tests.counting_projector

reads the same ``BLOGHUB_*`` settings as ``bloghub project``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.generations import schema_name
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.heap import settle_heap
from bloghub.projections.catalog import PROJECTORS
from bloghub.projections.postgres_sink import PostgresProjector, projector_engine
from bloghub.projections.worker import install_stop_signals, run_projectors
from bloghub.settings import Settings
from tests.support import projector_env

counts = Table(
    "counts",
    MetaData(),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("events", BigInteger, nullable=False),
)


class CountingProjector(PostgresProjector):
    name = "counting"
    families = (Family.USERS,)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        # Folded per batch, as real counters are: one increment per partition, in a fixed
        # order so that two writers of the same rows wait for each other, not deadlock.
        per_partition = sorted(Counter((r.topic, r.partition) for r in records).items())
        stmt = insert(counts).values(
            [{"topic": t, "partition": p, "events": n} for (t, p), n in per_partition]
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[counts.c.topic, counts.c.partition],
                set_={"events": counts.c.events + stmt.excluded.events},
            )
        )
        # A batch stays open a moment, as a real one writing many rows does: one statement
        # alone is over in a millisecond, and the freeze test (tests/freeze.py), which
        # stops the process at random until it finds it inside a batch, missed it 200
        # times in a row on a loaded machine.
        await asyncio.sleep(0.01)


async def create_counts(settings: Settings) -> str:
    """The counting read model (generation 1) in the settings' database; its schema."""
    schema = schema_name(CountingProjector.name, 1)
    engine = projector_engine(settings.sqlalchemy_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            placed = await conn.execution_options(schema_translate_map={None: schema})
            await placed.run_sync(counts.metadata.create_all)
    finally:
        await engine.dispose()
    return schema


def counting_process(settings: Settings, *, log_file: Path, batch: int) -> subprocess.Popen[bytes]:
    """The counting projector in a worker process of its own; its log goes to
    ``log_file``."""
    with log_file.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.counting_projector"],
            # A short heartbeat: the test sees at once which instances are at work.
            env={**projector_env(settings, batch=batch), "BLOGHUB_HEARTBEAT_TTL_S": "2"},
            cwd=Path(__file__).resolve().parents[1],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


async def _main() -> None:
    # Known to this process only: the real worker then runs it as it runs any projector
    # (lanes, heartbeat, dead letters, drain on SIGTERM).
    PROJECTORS[CountingProjector.name] = CountingProjector
    settle_heap()
    stop = asyncio.Event()
    install_stop_signals(stop)
    await run_projectors(Settings(), [CountingProjector.name], stop)


if __name__ == "__main__":
    asyncio.run(_main())
