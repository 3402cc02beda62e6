"""Every projector the system runs, by name."""

from __future__ import annotations

from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.projections.users import UsersProjector

POSTGRES_PROJECTORS: dict[str, type[PostgresProjector]] = {
    UsersProjector.name: UsersProjector,
}
