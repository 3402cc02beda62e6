"""Base for projectors whose state lives in Redis (counters, rankings).

A batch's commands and its checkpoint go in one MULTI/EXEC, under WATCH of the checkpoint
hash: if another instance moved the checkpoint meanwhile, the transaction is refused and
the batch is re-filtered against the new checkpoint, so nothing is applied twice.
Keys of generation N live under ``<prefix>:<projector>:g<N>:``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Self

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from bloghub.adapters.redis.errors import translated
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.projections.port import TP, fresh_records

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores


def _field(tp: TP) -> str:
    return f"{tp[0]}|{tp[1]}"


class RedisProjector(abc.ABC):
    name: str
    families: tuple[Family, ...]

    def __init__(self, redis: Redis, *, prefix: str, generation: int = 1) -> None:
        self.redis = redis
        self.generation = generation
        self.keyspace = f"{prefix}:{self.name}:g{generation}"
        self.checkpoint_key = f"{self.keyspace}:checkpoint"
        # False while this generation is rebuilt beside the serving one: no side effects.
        self.live = True

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        projector = cls(stores.redis, prefix=stores.settings.prefix, generation=generation)
        projector.live = stores.live
        return projector

    def key(self, *parts: str) -> str:
        return ":".join((self.keyspace, *parts))

    @abc.abstractmethod
    def stage(self, pipe: Pipeline, records: Sequence[Recorded]) -> None:
        """Queue the commands that apply ``records`` (de-duplicated, in log order)."""

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        return None

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        if not partitions:
            return {}
        async with translated():
            values = await self.redis.hmget(self.checkpoint_key, [_field(tp) for tp in partitions])
        return {tp: int(v) for tp, v in zip(partitions, values, strict=True) if v is not None}

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        partitions = list(next_offsets)
        async with translated(), self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    return await self._attempt(pipe, records, partitions, next_offsets)
                except WatchError:
                    continue  # another instance moved the checkpoint: filter again

    async def _attempt(
        self,
        pipe: Pipeline,
        records: Sequence[Recorded],
        partitions: list[TP],
        next_offsets: Mapping[TP, int],
    ) -> Sequence[Recorded]:
        await pipe.watch(self.checkpoint_key)
        values = await pipe.hmget(self.checkpoint_key, [_field(tp) for tp in partitions])
        stored = {tp: int(v) for tp, v in zip(partitions, values, strict=True) if v is not None}
        fresh = fresh_records(records, stored)
        moved: dict[FieldT, EncodableT] = {
            _field(tp): o for tp, o in next_offsets.items() if o > stored.get(tp, 0)
        }
        pipe.multi()  # type: ignore[no-untyped-call]
        self.stage(pipe, fresh)
        if moved:
            pipe.hset(self.checkpoint_key, mapping=moved)
        await pipe.execute()
        return fresh
