"""Every projector the system runs, by name."""

from __future__ import annotations

from bloghub.events.topics import Family
from bloghub.projections.articles import ArticlesProjector
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.projections.users import UsersProjector

POSTGRES_PROJECTORS: dict[str, type[PostgresProjector]] = {
    UsersProjector.name: UsersProjector,
    ArticlesProjector.name: ArticlesProjector,
}

# What each projector consumes, by name: the ops monitor watches every one of them.
PROJECTOR_FAMILIES: dict[str, tuple[Family, ...]] = {
    name: cls.families for name, cls in POSTGRES_PROJECTORS.items()
}
