"""Base for projectors that feed an OpenSearch index.

A document is the fold of its events, written in one of two ways.

By default (``write``) each batch reads the documents it touches (a realtime multi-get,
so it sees the last write whether or not it is searchable yet), applies its events to
them behind a guard the document keeps (the user search keeps the users offset) and writes
the changed ones back as a compare-and-set on what was read (``if_seq_no`` and
``if_primary_term``, or ``create`` for a document that was not there); the one refused
(409) reads the winner's document and folds again on top of it. An event the document
has already seen changes nothing, so a re-delivery, a zombie instance or a replay writes
nothing older.

A projector whose documents take parts from several streams with no order between them
(the article search: its text and its likes) sends scripted updates instead
(``scripted``): each carries every part at its own version, and OpenSearch applies a
part only past the version the document holds when the write lands, inside the shard.
Nothing is read beforehand, so no write rests on an older read (see projections/search.py).

Checkpoints live in Postgres and move after the bulk request succeeded. Generation N
writes index ``<prefix>-<projector>-g<N>``; the alias ``<prefix>-<projector>`` names the
serving one.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import structlog
from opensearchpy import AsyncOpenSearch
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.opensearch import bulk_conflicts
from bloghub.adapters.opensearch import translated as search_errors
from bloghub.adapters.postgres.checkpoints import Checkpoints
from bloghub.adapters.postgres.engine import translated as pg_errors
from bloghub.adapters.search_indexes import alias_name, index_name
from bloghub.errors import Transient
from bloghub.events.base import Event, Recorded
from bloghub.events.topics import Family
from bloghub.projections.port import TP, fresh_records

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores

log = structlog.get_logger(__name__)

# A bulk of a whole batch may take longer than the client's default bound on a loaded
# machine; cut short and sent again, it would only meet its own first copy (409s).
BULK_TIMEOUT_S = 120

# Folding again after a conflict converges (each round sees a newer document); a document
# that loses this many rounds in a row is being written by a runaway twin: wait and retry.
FOLD_ROUNDS = 8

# A scripted update is a get and a compare-and-set inside the shard; two writers of one
# document (the article's lane and its likes' lane) meet there, and the loser runs the
# script again on the winner's document.
UPDATE_RETRIES = 10


@dataclass(frozen=True, slots=True)
class Stored:
    """A document as read, with what a compare-and-set on it names."""

    source: dict[str, Any]
    seq_no: int
    primary_term: int


@dataclass(frozen=True, slots=True)
class Doc:
    """A document write: ``source`` replaces what ``read`` was (None: it was not there)."""

    id: str
    source: dict[str, Any]
    read: Stored | None


class SearchProjector(abc.ABC):
    name: str
    families: tuple[Family, ...]

    def __init__(
        self,
        client: AsyncOpenSearch,
        engine: AsyncEngine,
        *,
        prefix: str,
        generation: int = 1,
        serve: bool = True,
    ) -> None:
        self.client = client
        self.engine = engine
        self.generation = generation
        self.alias = alias_name(prefix, self.name)
        self.index = index_name(prefix, self.name, generation)
        self.checkpoints = Checkpoints(self.name, generation)
        self._serve = serve
        self._ready = False
        # False while this generation is rebuilt beside the serving one: no side effects.
        self.live = True

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        # A generation rebuilt beside the live one must not move the alias readers use.
        projector = cls(
            stores.search,
            stores.engine,
            prefix=stores.settings.prefix,
            generation=generation,
            serve=stores.live and stores.cache is not None,
        )
        projector.live = stores.live
        return projector

    @abc.abstractmethod
    def index_body(self) -> dict[str, Any]:
        """Settings and mappings of the index."""

    @abc.abstractmethod
    def doc_id(self, record: Recorded) -> str | None:
        """The document ``record`` changes, or None if it changes none."""

    @abc.abstractmethod
    def fold(
        self, doc_id: str, current: dict[str, Any] | None, records: list[Recorded]
    ) -> dict[str, Any] | None:
        """The document after ``records`` (in log order) applied to ``current``, or None
        if they change nothing (each was applied already, or does not concern it)."""

    def passes_over(self, model: type[Event]) -> bool:
        """Whether ``doc_id`` is None for every event of ``model`` (the runner then does
        not decode one). By default none is passed over."""
        return False

    def added_properties(self) -> dict[str, Any]:
        """Fields added to ``index_body``'s mapping since indexes were first made."""
        return {}

    async def reveal(self, records: Sequence[Recorded]) -> Sequence[Recorded]:
        """``records`` as ``fold`` reads them (sealed fields opened, where a projector has any)."""
        return records

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        return None

    async def ensure_index(self, *, serve: bool) -> None:
        """Create this generation's index; with ``serve`` point the alias at it alone."""
        async with search_errors():
            if not await self.client.indices.exists(index=self.index):
                await self.client.indices.create(
                    index=self.index, body=self.index_body(), ignore=400
                )
            elif added := self.added_properties():
                # An index made before these fields: its strict mapping takes them now.
                await self.client.indices.put_mapping(index=self.index, body={"properties": added})
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
        # Asked on every assignment, before any batch: the index exists from then on, so
        # searches meet an empty index rather than none.
        if not self._ready:
            await self.ensure_index(serve=self._serve)
            self._ready = True
        async with pg_errors(), self.engine.connect() as conn:
            return await self.checkpoints.load(conn, partitions)

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        if all(self.doc_id(r) is None for r in records):
            # No document to change (drafts, for the articles index): only the checkpoints
            # move, in one statement, without reading them first.
            async with pg_errors():
                await self.checkpoints.advance(self.engine, next_offsets)
            return ()
        stored = await self.load_checkpoints(list(next_offsets))
        fresh = fresh_records(records, stored)
        if fresh:
            await self.write(await self.reveal(fresh))
        async with pg_errors(), self.engine.begin() as conn:
            await self.checkpoints.save(conn, next_offsets)
        return fresh

    def by_document(self, records: Sequence[Recorded]) -> dict[str, list[Recorded]]:
        """``records`` by the document they change, each list in log order."""
        grouped: dict[str, list[Recorded]] = {}
        for rec in records:
            doc_id = self.doc_id(rec)
            if doc_id is not None:
                grouped.setdefault(doc_id, []).append(rec)
        return grouped

    async def write(self, records: Sequence[Recorded]) -> None:
        """Fold ``records`` into their documents and write the changed ones."""
        grouped = self.by_document(records)
        pending = list(grouped)
        for _ in range(FOLD_ROUNDS):
            if not pending:
                return
            current = await self._current(pending)
            docs = []
            for doc_id in pending:
                read = current.get(doc_id)
                after = self.fold(doc_id, read.source if read else None, grouped[doc_id])
                if after is not None:
                    docs.append(Doc(doc_id, after, read))
            pending = await self._bulk(docs) if docs else []
            if pending:
                log.info("search.refold", projector=self.name, documents=len(pending))
        raise Transient(f"{len(pending)} documents kept changing under {self.name}")

    async def scripted(self, script: str, updates: Mapping[str, dict[str, Any]]) -> None:
        """Send each document its update: ``script`` run by OpenSearch on the document as
        it is when the write lands (created from nothing if missing), with the document's
        parameters. The script alone decides what applies, so a write that meets a
        conflict (another writer between the shard's own get and put, past its retries)
        is simply sent again."""
        pending = list(updates)
        for _ in range(FOLD_ROUNDS):
            if not pending:
                return
            lines: list[dict[str, Any]] = []
            for doc_id in pending:
                meta = {"_index": self.index, "_id": doc_id, "retry_on_conflict": UPDATE_RETRIES}
                body = {
                    "scripted_upsert": True,
                    "upsert": {},
                    "script": {"source": script, "lang": "painless", "params": updates[doc_id]},
                }
                lines += [{"update": meta}, body]
            async with search_errors():
                result = await self.client.bulk(
                    body=lines, refresh=False, request_timeout=BULK_TIMEOUT_S
                )
            pending = bulk_conflicts(result)
            if pending:
                log.info("search.resend", projector=self.name, documents=len(pending))
        raise Transient(f"{len(pending)} documents kept changing under {self.name}")

    async def _current(self, ids: list[str]) -> dict[str, Stored]:
        async with search_errors():
            found = await self.client.mget(index=self.index, body={"ids": ids})
        return {
            d["_id"]: Stored(d["_source"], d["_seq_no"], d["_primary_term"])
            for d in found["docs"]
            if d.get("found")
        }

    async def _bulk(self, docs: list[Doc]) -> list[str]:
        """Write ``docs``, each only over what it was folded from; the ids of those that
        changed meanwhile (to read and fold again)."""
        lines: list[dict[str, Any]] = []
        for doc in docs:
            meta: dict[str, Any] = {"_index": self.index, "_id": doc.id}
            if doc.read is None:
                lines += [{"create": meta}, doc.source]
            else:
                meta |= {"if_seq_no": doc.read.seq_no, "if_primary_term": doc.read.primary_term}
                lines += [{"index": meta}, doc.source]
        async with search_errors():
            result = await self.client.bulk(
                body=lines, refresh=False, request_timeout=BULK_TIMEOUT_S
            )
        return bulk_conflicts(result)
