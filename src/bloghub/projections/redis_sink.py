"""Base for projectors whose state lives in Redis (counters, rankings).

The contract for a subclass is small: set ``name`` and ``families`` and implement
``writes(records)``, returning the writes that apply the records (already de-duplicated,
in log order) as ``Write`` values of the kinds ``adapters/redis/batch_script.py`` lists,
on keys made by ``self.key(...)``. Optionally ``after_commit``. Nothing else: the base
de-duplicates, applies, checkpoints and reports progress.

A batch and its per-partition checkpoints go to Redis as one server-side script that
checks before it writes (see batch_script.py): if another instance moved one of the
batch's partitions meanwhile, nothing is written and the batch is filtered again against
the new checkpoint, so nothing is applied twice; a write that cannot apply fails the
whole batch before any of it is written. Keys of generation N live under
``<prefix>:<projector>:g<N>:``.

Checkpoints in Redis are only as safe as Redis keeps them: the projector refuses to start
on a server whose eviction policy could drop them (``maxmemory-policy`` other than
``noeviction`` or a ``volatile-*`` one; checkpoints and projector keys carry no TTL, so
``volatile-*`` never evicts them).

After each commit the checkpoints are also reported to Postgres (``projector_checkpoints``,
moved forward only), where read-your-writes waits on every projector: a query that reads
a Redis projector waits for it like for a Postgres one. The report follows the Redis
commit, so a waiter may wait a moment longer, never read too early.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Self

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.checkpoints import Checkpoints
from bloghub.adapters.postgres.engine import translated as pg_errors
from bloghub.adapters.redis.batch_script import BatchScript, Write
from bloghub.adapters.redis.errors import translated
from bloghub.errors import Transient, Unavailable
from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family
from bloghub.projections.port import TP, fresh_records

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores

SAFE_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


class EvictionUnsafe(RuntimeError):
    """The Redis server may evict keys without a TTL: checkpoints could vanish and the
    projector would apply its partitions again from the start."""


def _field(tp: TP) -> str:
    return f"{tp[0]}|{tp[1]}"


class RedisProjector(abc.ABC):
    name: str
    families: tuple[Family, ...]

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        generation: int = 1,
        progress: AsyncEngine | None = None,
    ) -> None:
        self.redis = redis
        self.generation = generation
        self.keyspace = f"{prefix}:{self.name}:g{generation}"
        self.checkpoint_key = f"{self.keyspace}:checkpoint"
        self._script = BatchScript(redis)
        self._progress = progress
        self._checkpoints = Checkpoints(self.name, generation)
        self._policy_checked = False
        # False while this generation is rebuilt beside the serving one: no side effects.
        self.live = True

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        projector = cls(
            stores.redis,
            prefix=stores.settings.prefix,
            generation=generation,
            progress=stores.engine,
        )
        projector.live = stores.live
        return projector

    def key(self, *parts: str) -> str:
        return ":".join((self.keyspace, *parts))

    @abc.abstractmethod
    def writes(self, records: Sequence[Recorded]) -> list[Write]:
        """The writes that apply ``records`` (de-duplicated, in log order)."""

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        return None

    async def check_eviction_policy(self) -> None:
        """Refuse a server that could evict the checkpoints (``EvictionUnsafe``)."""
        async with translated():
            found = await self.redis.config_get("maxmemory-policy")
        policy = next(iter(found.values()), "") if found else ""
        name = policy.decode() if isinstance(policy, bytes) else str(policy)
        if name not in SAFE_POLICIES:
            raise EvictionUnsafe(
                f"Redis maxmemory-policy is {name!r}: the {self.name} projector keeps its "
                f"checkpoints in Redis and needs one of {', '.join(SAFE_POLICIES)}"
            )
        self._policy_checked = True

    def passes_over(self, model: type[Event]) -> bool:
        """None passed over: every event is decoded (``projections/decoding.py``)."""
        return False

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        if not self._policy_checked:
            await self.check_eviction_policy()
        return await self._stored(partitions)

    async def _stored(self, partitions: Sequence[TP]) -> dict[TP, int]:
        if not partitions:
            return {}
        async with translated():
            values = await self.redis.hmget(self.checkpoint_key, [_field(tp) for tp in partitions])
        return {tp: int(v) for tp, v in zip(partitions, values, strict=True) if v is not None}

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        partitions = list(next_offsets)
        while True:
            stored = await self._stored(partitions)
            fresh = fresh_records(records, stored)
            moved = {_field(tp): o for tp, o in next_offsets.items() if o > stored.get(tp, 0)}
            expected = {_field(tp): stored.get(tp) for tp in partitions}
            async with translated():
                done = await self._script.run(
                    self.checkpoint_key, expected, moved, self.writes(fresh) if moved else []
                )
            if done:
                await self._report(next_offsets)
                return fresh if moved else []
            # Another instance moved one of these partitions: filter again.

    async def _report(self, next_offsets: Mapping[TP, int]) -> None:
        """Progress for read-your-writes. A failure here is not the batch's: it is logged
        by the runner's after-commit path next time, and the next batch reports again."""
        if self._progress is None:
            return
        try:
            async with pg_errors(), self._progress.begin() as conn:
                await self._checkpoints.save(conn, next_offsets)
        except (Transient, Unavailable):
            return
