"""The interactions projector: per-article counts (reads, likes, collections) and whether
readers may see them, each user's likes and collections, and the Redis counter hashes it
owns.

It consumes the articles family (publish shows an article's counts, withdraw and delete
hide them) and the interactions family. Interactions are folded in memory per batch and
written as a few statements (see interaction_fold.py and interaction_writes.py).
Exactly-once comes from the Postgres sink (batch and checkpoint in one transaction).

Counts always equal the sizes of their sets, whatever the visibility: the two families are
read as separate partitions, so which of a publish and a like is applied first differs
between live and a replay, and a rule that ignored likes of hidden articles would give a
replay other counts than live. What freezes a hidden article's counts is the commands:
they refuse likes and collections of an article that is not shown, and a hidden article's
detail is not served, so no read of it is counted. Only a like decided just before the
withdraw can land after it (a bounded race of one request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Self, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bloghub.adapters.redis.cache import Cache
from bloghub.adapters.redis.counters import CounterCache, CounterWrites, Counts, Tally
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
)
from bloghub.events.base import Event, Recorded
from bloghub.events.interactions import ArticleRead, CollectionCreated, InteractionEvent
from bloghub.events.topics import Family
from bloghub.projections import interaction_writes as w
from bloghub.projections.interaction_fold import Fold, count_reads, marks_expire_before, net
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.ranking.hidden import HiddenArticles

if TYPE_CHECKING:
    from bloghub.projections.stores import Stores

_VISIBILITY = (ArticlePublished, ArticleWithdrawn, ArticleDeleted)

# What a batch's transaction left for its after-commit hook: the counts it moved and the
# version (offset + 1 of the last interaction) of each article it touched. A lane applies a
# batch and runs the hook in one task, one batch after the other, so a context variable
# carries them across without a second read or a second pass over the records; they are
# used only for the very list of records they were computed from (a batch applied event by
# event works them out again).
_MOVED: ContextVar[tuple[Sequence[Recorded], dict[str, Tally], dict[str, int]] | None] = ContextVar(
    "interactions_moved", default=None
)


class Kind(IntEnum):
    """What this projector does with an event of a given model."""

    OTHER = 0
    SHOWN = 1  # publish, withdraw, delete: whether the article's counts are shown
    INTERACTION = 2
    MADE = 3  # a collection created


_KINDS: dict[type[Event], Kind] = {}


def kind_of(event: Event) -> Kind:
    """The event's kind, worked out once per model: this runs for every event of every
    batch, and an isinstance of an event model goes through ABCMeta (pydantic's
    metaclass), several times per event when each pass asked again."""
    return kind_of_model(type(event))


def kind_of_model(cls: type[Event]) -> Kind:
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _KINDS[cls] = (
            Kind.SHOWN
            if issubclass(cls, _VISIBILITY)
            else Kind.INTERACTION
            if issubclass(cls, InteractionEvent)
            else Kind.MADE
            if issubclass(cls, CollectionCreated)
            else Kind.OTHER
        )
    return kind


def claims_of(
    shown: Sequence[tuple[ArticleEvent, datetime]], seen: Mapping[str, tuple[str, datetime]]
) -> dict[str, tuple[str, datetime, bool]]:
    """The counter rows a batch with article events writes: each with the author and time
    a new row gets, and whether to make it. An interaction (``seen``: each article's author
    and the time of its first interaction in the batch) or a publish makes its row (as they
    would anyway); a withdraw or a delete only locks one that exists."""
    claims = {a: (author, at, True) for a, (author, at) in seen.items()}
    for event, at in shown:
        made = isinstance(event, ArticlePublished)
        if made or event.article_id not in claims:
            claims[event.article_id] = (event.author_id, at, made)
    return claims


class InteractionsProjector(PostgresProjector):
    name = "interactions"
    families: tuple[Family, ...] = (Family.ARTICLES, Family.INTERACTIONS)

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        generation: int = 1,
        cache: Cache | None = None,
        counters: CounterCache | None = None,
        ranking: HiddenArticles | None = None,
    ) -> None:
        super().__init__(engine, generation=generation, cache=cache)
        self.counters = counters
        # Told of withdraws, deletes and publishes before they commit (ranking/hidden.py).
        self.ranking = ranking
        # What Redis refuses is kept and retried until it lands (a hash that a lost refresh
        # left behind the read model would otherwise stay so until its next write).
        self._counter_writes = None if counters is None else CounterWrites(counters)

    @classmethod
    def from_stores(cls, stores: Stores, *, generation: int) -> Self:
        # Only the serving generation (live, with the shared cache) fills the counter
        # hashes; a rebuild or a migration's quiet store leaves them to the one serving.
        counters, ranking = None, None
        if stores.live and stores.cache is not None:
            counters = CounterCache(stores.redis, prefix=stores.settings.prefix)
            ranking = HiddenArticles(stores.redis, prefix=stores.settings.prefix)
        projector = cls(
            stores.engine,
            generation=generation,
            cache=stores.cache,
            counters=counters,
            ranking=ranking,
        )
        projector.live = stores.live
        return projector

    def concerns(self, record: Recorded) -> bool:
        # Drafts and their edits are no part of the counts or of who may see them.
        return kind_of(record.event) is not Kind.OTHER

    def passes_over(self, model: type[Event]) -> bool:
        return kind_of_model(model) is Kind.OTHER

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        # Counts do not depend on visibility (see above), so the whole batch's interactions
        # fold into one set of statements, however its article events fall among them.
        # One pass over the records: this runs for every event of a replay.
        shown: list[tuple[ArticleEvent, datetime]] = []
        made: list[tuple[CollectionCreated, datetime]] = []
        fold = Fold()
        add = fold.add
        # Each article's author and the time of its first interaction here (what a counter
        # row this batch makes carries), and its version: offset + 1 of its last one (an
        # article's events share its partition, in offset order: the last wins).
        seen: dict[str, tuple[str, datetime]] = {}
        versions: dict[str, int] = {}
        for r in records:
            event = r.event
            kind = kind_of(event)
            if kind is Kind.INTERACTION:
                interaction = cast(InteractionEvent, event)
                at = r.envelope.occurred_at
                add(interaction, at)
                article = interaction.article_id
                if article not in seen:
                    seen[article] = (interaction.author_id, at)
                versions[article] = r.offset + 1
            elif kind is Kind.SHOWN:
                shown.append((cast(ArticleEvent, event), r.envelope.occurred_at))
            elif kind is Kind.MADE:
                made.append((cast(CollectionCreated, event), r.envelope.occurred_at))
        if shown:
            # The lane of the articles family and the lane of the interactions family write
            # the same counter rows; the counts' one statement takes them in id order, so
            # this transaction takes all of its rows first, in that order too, rather than
            # event by event (which deadlocked the two lanes, stalling both a second).
            await w.claim_counts(conn, claims_of(shown, seen))
        # Each article's events in version order, which the version guard makes the same
        # as log order; articles in id order, as locked.
        for event, at in sorted(shown, key=lambda e: (e[0].article_id, e[0].version)):
            await w.apply_visibility(conn, event, at)
        await w.create_collections(conn, made)
        changes = await self._changes(conn, fold, records) if seen else {}
        moved = await w.move_counts(conn, changes, seen) if seen else {}
        _MOVED.set((records, moved, versions))

    async def _changes(
        self, conn: AsyncConnection, fold: Fold, records: Sequence[Recorded]
    ) -> dict[str, Counts]:
        """Write the folded set changes; the count change per article they come to."""
        # Deletes first: a member the batch removed and added again is deleted, then
        # inserted with the time of its last add (interaction_fold.py).
        unliked = net(await w.remove_likes(conn, fold.unliked()), -1)
        liked = net(await w.add_likes(conn, fold.liked()), 1)
        removed = await w.remove_entries(conn, fold.uncollected())
        made = await w.add_entries(conn, fold.collected())
        collectors = await w.collectors_moved(conn, made, removed)
        reads: dict[str, int] = {}
        if fold.reads:
            last = await w.last_counted(conn, sorted(fold.reads))
            reads, marks = count_reads(fold.reads, last)
            parts, latest = _read_partitions(records)
            await w.save_marks(conn, marks, parts)
            # Marks too old to matter go as the log's time moves on, so the table holds
            # about a day of readers, not every reader there ever was.
            for part, at in latest.items():
                await w.prune_marks(conn, part, marks_expire_before(at))
        articles = set(liked) | set(unliked) | set(collectors) | set(reads)
        return {
            a: Counts(reads.get(a, 0), liked.get(a, 0) + unliked.get(a, 0), collectors.get(a, 0))
            for a in articles
        }

    async def before_commit(self, records: Sequence[Recorded]) -> None:
        """Fence as every projector does, and tell the served ranking of the articles the
        batch withdraws, deletes or publishes (each as its last such event leaves it), so
        a withdrawn article leaves every API process's ranking once this commits."""
        await super().before_commit(records)
        if self.ranking is None or not self.live:
            return
        visible: dict[str, bool] = {}
        for r in records:
            if kind_of(r.event) is Kind.SHOWN:
                event = cast(ArticleEvent, r.event)
                visible[event.article_id] = isinstance(event, ArticlePublished)
        await self.ranking.mark(visible)

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        """Refresh the counter hashes of the articles the batch touched, as committed, each
        at the version of its last interaction here (see adapters/redis/counters.py). A
        refresh Redis refuses is kept and retried (``CounterWrites``), not lost."""
        await super().after_commit(records)
        moved, _ = _MOVED.get(), _MOVED.set(None)
        if self._counter_writes is None or not self.live:
            return
        if moved is not None and moved[0] is records:
            # The counts the commit left, as the transaction returned them; an article whose
            # counts did not move keeps its hash as it is.
            _, tallies, versions = moved
            if not tallies:
                return
        else:  # applied one event at a time (a batch that failed whole): read them back
            versions = _versions(records)
            if not versions:
                return
            async with self.engine.connect() as raw:
                conn = await raw.execution_options(schema_translate_map={None: self.schema})
                tallies = await w.tallies(conn, versions)
        await self._counter_writes.write({a: (versions[a], t) for a, t in tallies.items()})


def _read_partitions(records: Sequence[Recorded]) -> tuple[dict[str, int], dict[int, datetime]]:
    """The partition of each article the records' reads are of, and the latest read time
    applied from each partition."""
    parts: dict[str, int] = {}
    latest: dict[int, datetime] = {}
    for r in records:
        if type(r.event) is ArticleRead:
            at = r.envelope.occurred_at
            parts[r.event.article_id] = r.partition
            if r.partition not in latest or at > latest[r.partition]:
                latest[r.partition] = at
    return parts, latest


def _versions(records: Sequence[Recorded]) -> dict[str, int]:
    """The version of each article the records' interactions touched: offset + 1 of its
    last one."""
    versions: dict[str, int] = {}
    for r in records:
        if kind_of(r.event) is Kind.INTERACTION:
            article_id = cast(InteractionEvent, r.event).article_id
            versions[article_id] = max(versions.get(article_id, 0), r.offset + 1)
    return versions
