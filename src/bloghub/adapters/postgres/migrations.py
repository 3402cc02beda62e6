"""The migrations registry: which projector read models are being moved (or were moved)
to another database, and in which phase. Every API and projector process reads it beside
the generations registry, every ``generations_poll_s``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import migrations
from bloghub.migration_phases import Phase, Store, reads_from

m = migrations.c


@dataclass(frozen=True, slots=True)
class Migration:
    projector: str
    generation: int
    target_url: str
    phase: Phase

    def url_of(self, store: Store, source_url: str) -> str:
        return self.target_url if store is Store.TARGET else source_url

    def read_url(self, source_url: str) -> str:
        return self.url_of(reads_from(self.phase), source_url)


def shown_url(url: str) -> str:
    """A database URL without its password, for output and logs (one that does not parse
    is not shown at all: it might be a password)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


async def all_migrations(conn: AsyncConnection) -> dict[str, Migration]:
    rows = await conn.execute(select(m.projector, m.generation, m.target_url, m.phase))
    return {
        r.projector: Migration(r.projector, r.generation, r.target_url, Phase(r.phase))
        for r in rows
    }


async def migration_of(conn: AsyncConnection, projector: str) -> Migration | None:
    return (await all_migrations(conn)).get(projector)


async def register_migration(
    conn: AsyncConnection, projector: str, generation: int, target_url: str
) -> None:
    """Phase 1 for a projector that has no migration (a repeated start changes nothing)."""
    await conn.execute(
        insert(migrations)
        .values(
            projector=projector,
            generation=generation,
            target_url=target_url,
            phase=int(Phase.SOURCE_ONLY),
        )
        .on_conflict_do_nothing()
    )


async def set_phase(conn: AsyncConnection, projector: str, current: Phase, wanted: Phase) -> bool:
    """Move from ``current`` to ``wanted`` in one statement; False if another operator moved
    it first (the row no longer says ``current``)."""
    done = await conn.execute(
        update(migrations)
        .where(m.projector == projector, m.phase == int(current))
        .values(phase=int(wanted), changed_at=func.now())
    )
    return bool(done.rowcount)


async def remove_migration(conn: AsyncConnection, projector: str, phase: Phase) -> bool:
    done = await conn.execute(
        delete(migrations).where(m.projector == projector, m.phase == int(phase))
    )
    return bool(done.rowcount)


def moved_reads(
    migrations: Mapping[str, Migration], generations: Mapping[str, int], projector: str
) -> str | None:
    """The URL of the database a projector's reads come from, if a migration of its
    active generation has moved them off the main one (phases 3 and 4)."""
    migration = migrations.get(projector)
    if migration is None or migration.generation != generations.get(projector, 1):
        return None
    return migration.target_url if reads_from(migration.phase) is Store.TARGET else None
