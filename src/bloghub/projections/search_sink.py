"""Base for projectors that feed an OpenSearch index.

Documents are written with external versions derived from the log offset of the event
that produced them, so re-delivery (or a replay running beside the live projector) can
never overwrite a newer document with an older one: OpenSearch refuses the stale write
and we count that refusal as success. Checkpoints live in Postgres and move after the
bulk request succeeded. Generation N writes index ``<prefix>-<projector>-g<N>``; readers
go through the alias ``<prefix>-<projector>``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from opensearchpy import AsyncOpenSearch
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.opensearch import check_bulk
from bloghub.adapters.opensearch import translated as search_errors
from bloghub.adapters.postgres.checkpoints import Checkpoints
from bloghub.adapters.postgres.engine import translated as pg_errors
from bloghub.events.base import Recorded
from bloghub.events.topics import Family
from bloghub.projections.port import TP, fresh_records

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores


@dataclass(frozen=True, slots=True)
class Doc:
    """A document write: ``source`` None deletes. ``version`` must grow with the log."""

    id: str
    version: int
    source: dict[str, Any] | None


class SearchProjector(abc.ABC):
    name: str
    families: tuple[Family, ...]

    def __init__(
        self, client: AsyncOpenSearch, engine: AsyncEngine, *, prefix: str, generation: int = 1
    ) -> None:
        self.client = client
        self.engine = engine
        self.generation = generation
        self.alias = f"{prefix}-{self.name}"
        self.index = f"{self.alias}-g{generation}"
        self.checkpoints = Checkpoints(self.name, generation)
        # False while this generation is rebuilt beside the serving one: no side effects.
        self.live = True

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        projector = cls(
            stores.search, stores.engine, prefix=stores.settings.prefix, generation=generation
        )
        projector.live = stores.live
        return projector

    @abc.abstractmethod
    def index_body(self) -> dict[str, Any]:
        """Settings and mappings of the index."""

    @abc.abstractmethod
    def documents(self, records: Sequence[Recorded]) -> list[Doc]:
        """The document writes that ``records`` make, in log order."""

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        return None

    async def ensure_index(self, *, serve: bool) -> None:
        """Create this generation's index; with ``serve`` point the alias at it alone."""
        async with search_errors():
            if not await self.client.indices.exists(index=self.index):
                await self.client.indices.create(index=self.index, body=self.index_body())
            if serve:
                actions: list[dict[str, Any]] = [
                    {"add": {"index": self.index, "alias": self.alias}}
                ]
                if await self.client.indices.exists_alias(name=self.alias):
                    current = await self.client.indices.get_alias(name=self.alias)
                    actions += [
                        {"remove": {"index": name, "alias": self.alias}}
                        for name in current
                        if name != self.index
                    ]
                await self.client.indices.update_aliases(body={"actions": actions})

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        async with pg_errors(), self.engine.connect() as conn:
            return await self.checkpoints.load(conn, partitions)

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        stored = await self.load_checkpoints(list(next_offsets))
        fresh = fresh_records(records, stored)
        docs = self.documents(fresh)
        if docs:
            await self._bulk(docs)
        async with pg_errors(), self.engine.begin() as conn:
            await self.checkpoints.save(conn, next_offsets)
        return fresh

    async def _bulk(self, docs: list[Doc]) -> None:
        lines: list[dict[str, Any]] = []
        for doc in docs:
            meta = {
                "_index": self.index,
                "_id": doc.id,
                "version": doc.version,
                "version_type": "external",
            }
            if doc.source is None:
                lines.append({"delete": meta})
            else:
                lines += [{"index": meta}, doc.source]
        async with search_errors():
            result = await self.client.bulk(body=lines, refresh=False)
        check_bulk(result)
