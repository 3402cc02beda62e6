"""Base for projectors whose read model lives in Postgres.

A batch, and the per-partition checkpoint it reaches, are written in one transaction.
The checkpoint rows are locked first, so a second instance that still believes it owns a
partition (after a rebalance) waits, then sees the moved checkpoint and skips what was
already applied.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.postgres.checkpoints import Checkpoints
from bloghub.adapters.postgres.engine import make_engine, translated
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.redis.cache import Cache
from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family
from bloghub.projections.port import TP, fresh_records
from bloghub.settings import Settings

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores


def projector_engine(
    url: str,
    *,
    pool_size: int,
    app: str = "bloghub-projector",
    statement_timeout_s: float | None = None,
) -> AsyncEngine:
    """The engine Postgres projectors write through. Its sessions commit without waiting
    for the disk: a batch and its checkpoint are lost or kept together, and the log still
    has the events. It does not ping a connection before each use: a batch that meets a
    dead connection fails as transient and is tried again on a fresh one, and the ping
    would cost every batch a round trip. ``statement_timeout_s``: as ``make_engine``'s (a
    live projector's; a replay's or a migration's copy takes as long as it takes)."""
    return make_engine(
        url,
        pool_size=pool_size,
        app=app,
        pre_ping=False,
        server_settings={"synchronous_commit": "off"},
        statement_timeout_s=statement_timeout_s,
    )


class Concerning:
    """A projector's ``concerns``: records of events of ``kinds`` (or their subclasses),
    worked out once per event model (an isinstance of a model goes through pydantic's
    metaclass, and this runs for every record of every batch). ``model`` says the same of
    a model, for ``passes_over``."""

    def __init__(self, *kinds: type[Event]) -> None:
        self._kinds = kinds
        self._known: dict[type[Event], bool] = {}

    def model(self, cls: type[Event]) -> bool:
        found = self._known.get(cls)
        if found is None:
            found = self._known[cls] = issubclass(cls, self._kinds)
        return found

    def __call__(self, record: Recorded) -> bool:
        return self.model(type(record.event))


def concerning(*kinds: type[Event]) -> Concerning:
    return Concerning(*kinds)


class PostgresProjector(abc.ABC):
    name: str
    families: tuple[Family, ...]

    def __init__(
        self, engine: AsyncEngine, *, generation: int = 1, cache: Cache | None = None
    ) -> None:
        self.engine = engine
        self.cache = cache  # owned here: invalidated in after_commit
        # A generation being rebuilt beside the live one must not pre-warm shared caches.
        self.live = True
        self.generation = generation
        self.schema = schema_name(self.name, generation)
        self.checkpoints = Checkpoints(self.name, generation)

    @classmethod
    def build(
        cls, engine: AsyncEngine, settings: Settings, *, generation: int, cache: Cache | None
    ) -> Self:
        """The projector as a worker or a replay runs it (a projector that needs more from
        the settings than the engine takes it here)."""
        return cls(engine, generation=generation, cache=cache)

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        projector = cls.build(
            stores.engine, stores.settings, generation=generation, cache=stores.cache
        )
        projector.live = stores.live
        return projector

    @abc.abstractmethod
    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        """Write ``records`` (already de-duplicated, in log order) to the read model."""

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        """The cache entries ``records`` make stale (none unless a projector owns some)."""
        return set()

    async def before_commit(self, records: Sequence[Recorded]) -> None:
        # Stale entries are fenced just before the commit makes the change visible: from
        # then until the fence is lifted after the commit, readers read the store and no
        # copy of the old rows can be put back. A fence Redis refuses raises (Transient or
        # Unavailable) inside the transaction, so nothing is committed while the old entry
        # could still be served: the runner waits for Redis and applies the batch again.
        if self.cache is not None:
            await self.cache.fence(self.stale_cache_keys(records))

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        # Never raises: a lift Redis refuses is retried by the cache until it lands, and
        # meanwhile the fence set before the commit keeps readers off the entries.
        if self.cache is not None:
            await self.cache.invalidate(self.stale_cache_keys(records))

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        async with translated(), self.engine.connect() as conn:
            return await self.checkpoints.load(conn, partitions)

    def concerns(self, record: Recorded) -> bool:
        """Whether ``handle`` or a hook does anything with ``record``: by default every
        record of the projector's topics does. A projector that ignores some says which,
        from the same tests its ``handle`` dispatches on."""
        return True

    def passes_over(self, model: type[Event]) -> bool:
        """Whether no event of ``model`` concerns this projector, whatever it holds (the
        runner then does not decode one: ``projections/decoding.py``). By default none
        is passed over; a projector whose ``concerns`` goes by the model alone says so."""
        return False

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        if not any(map(self.concerns, records)):
            # Nothing to write (the social projector and a draft, the notifications
            # projector and a login): only the checkpoints move, in one statement.
            async with translated():
                await self.checkpoints.advance(self.engine, next_offsets)
            return ()
        async with translated(), self.engine.begin() as raw:
            conn = await raw.execution_options(schema_translate_map={None: self.schema})
            stored = await self.checkpoints.lock(conn, list(next_offsets))
            fresh = fresh_records(records, stored)
            if fresh:
                await self.handle(conn, fresh)
                await self.before_commit(fresh)
            await self.checkpoints.save(conn, next_offsets)
        return fresh
