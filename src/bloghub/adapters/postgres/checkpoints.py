"""Per-partition checkpoints of projectors: the next offset each one will apply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import checkpoints

TP = tuple[str, int]
c = checkpoints.c


class Checkpoints:
    """The checkpoint rows of one projector generation."""

    def __init__(self, projector: str, generation: int) -> None:
        self.projector = projector
        self.generation = generation

    async def load(self, conn: AsyncConnection, partitions: Sequence[TP]) -> dict[TP, int]:
        if not partitions:
            return {}
        rows = await conn.execute(self._query(partitions))
        return {(r.topic, r.partition): r.next_offset for r in rows}

    async def lock(self, conn: AsyncConnection, partitions: Sequence[TP]) -> dict[TP, int]:
        """Load and lock (creating missing rows), so concurrent writers of one partition
        take turns; the second sees the first's progress. Rows exist after a partition's
        first batch, so the usual lock is one statement."""
        locked = await self._locked(conn, partitions)
        if len(locked) < len(set(partitions)):
            await conn.execute(
                insert(checkpoints)
                .values([self._row(tp, 0) for tp in partitions if tp not in locked])
                .on_conflict_do_nothing()
            )
            locked = await self._locked(conn, partitions)
        return locked

    async def _locked(self, conn: AsyncConnection, partitions: Sequence[TP]) -> dict[TP, int]:
        rows = await conn.execute(self._query(partitions).with_for_update())
        return {(r.topic, r.partition): r.next_offset for r in rows}

    async def save(self, conn: AsyncConnection, offsets: Mapping[TP, int]) -> None:
        if not offsets:
            return
        stmt = insert(checkpoints).values([self._row(tp, o) for tp, o in offsets.items()])
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["projector", "generation", "topic", "partition"],
                set_={
                    "next_offset": stmt.excluded.next_offset,
                    "updated_at": stmt.excluded.updated_at,
                },
                where=c.next_offset < stmt.excluded.next_offset,
            )
        )

    def _row(self, tp: TP, offset: int) -> dict[str, object]:
        return {
            "projector": self.projector,
            "generation": self.generation,
            "topic": tp[0],
            "partition": tp[1],
            "next_offset": offset,
            "updated_at": datetime.now(UTC),
        }

    def _query(self, partitions: Sequence[TP]) -> Select[tuple[str, int, int]]:
        return select(c.topic, c.partition, c.next_offset).where(
            c.projector == self.projector,
            c.generation == self.generation,
            tuple_(c.topic, c.partition).in_(list(partitions)),
        )
