"""Read-your-writes: wait, bounded, until the projectors a query reads have passed a position.

A query names the projectors it reads. The position comes from ``Bloghub-After`` or, for an
authenticated caller, from their own last write (kept in Redis with a short TTL).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Protocol, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_read_engine, read_all, translated
from bloghub.adapters.postgres.engines import Engines
from bloghub.adapters.postgres.generations import active_generations
from bloghub.adapters.postgres.migrations import Migration, all_migrations, moved_reads
from bloghub.adapters.postgres.tables import checkpoints
from bloghub.adapters.redis.wire import Wire
from bloghub.auth.limiter import redis_translated
from bloghub.coalesce import Coalesced
from bloghub.errors import Transient, Unavailable
from bloghub.events.position import Position
from bloghub.events.topics import Family, topic_for
from bloghub.logs import SELDOM

# Keep the highest offset per partition; the whole key expires a while after the last write.
# KEYS: the writers' hashes; ARGV[1] the TTL, then per key: how many partitions, then each
# partition's field and offset. Several writers in one call: the writes answered at about
# the same time are remembered in one round trip (``Coalesced``).
_REMEMBER = """
local a = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  for i = a + 1, a + 2 * n, 2 do
    local cur = tonumber(redis.call('HGET', KEYS[k], ARGV[i]) or '-1')
    if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[k], ARGV[i], ARGV[i + 1]) end
  end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  a = a + 1 + 2 * n
end
return 1
"""

log = structlog.get_logger(__name__)


# How long a change of an account's credentials is remembered for its logins: far longer
# than any projector lag a deployment lives with.
CREDENTIALS_TTL_S = 7 * 24 * 3600
# A day: a projector that lags longer than that has answered 503 to every read for hours.
VISIBILITY_TTL_S = 24 * 3600
# How long a caller's own last write is kept for their changes, which are never decided on
# a state older than it (503 to retry): a day, as a hiding is. Their reads wait for it only
# ``own_write_ttl_s`` after it was written (the hash's ``at``, in milliseconds), so a long
# outage does not keep every read of theirs off the caches.
DECIDING_TTL_S = 24 * 3600
_AT = "at"


class OwnWrites:
    def __init__(self, redis: Redis, *, prefix: str, ttl_s: int, wire: Wire) -> None:
        self._redis = redis
        self._wire = wire  # the coalesced remembering's round trip (adapters/redis/wire.py)
        self._prefix = prefix
        self._ttl = ttl_s
        self._script = redis.register_script(_REMEMBER)
        self._remembered: Coalesced[tuple[str, Position], None] = Coalesced(self._remember_all)

    def key(self, user_id: str) -> str:
        return f"{self._prefix}:lastpos:{user_id}"

    async def remember(self, user_id: str, position: Position) -> None:
        if position:
            await self._remembered((user_id, position))

    async def _remember_all(self, writes: list[tuple[str, Position]]) -> list[None]:
        args: list[str | int] = [max(self._ttl, DECIDING_TTL_S)]
        now_ms = int(time.time() * 1000)
        for _, position in writes:
            offsets = list(position)
            args.append(len(offsets) + 1)
            for topic, partition, offset in offsets:
                args += [f"{topic}|{partition}", offset]
            args += [_AT, now_ms]  # kept as the later of the two, as the offsets are
        keys = [self.key(user) for user, _ in writes]
        (done,) = await self._wire.execute([("EVALSHA", self._script.sha, len(keys), *keys, *args)])
        if isinstance(done, NoScriptError):  # Redis restarted or flushed its scripts
            await self._script(keys=keys, args=args)
        elif isinstance(done, Exception):
            raise done
        return [None] * len(writes)

    async def last(self, user_id: str, *, deciding: bool) -> Position:
        async with redis_translated():
            return self.own(await self._redis.hgetall(self.key(user_id)), deciding=deciding)

    def own(self, raw: Mapping[bytes | str, bytes | str], *, deciding: bool) -> Position:
        """The caller's own last write as kept at ``key(user)``: for a change (``deciding``)
        however long ago it was written, within a day; for a read, only within
        ``own_write_ttl_s`` of it."""
        if not deciding:
            at = raw.get(_AT.encode(), raw.get(_AT))
            if at is not None and time.time() * 1000 - int(at) > self._ttl * 1000:
                return Position()
        return self.parse(raw)

    def credentials_key(self, user_id: str) -> str:
        return f"{self._prefix}:credpos:{user_id}"

    async def remember_credentials(self, user_id: str, position: Position) -> None:
        """``position`` changed the account's password or ended it. Kept apart from the
        own writes, and far longer: a login compares the password with the read model,
        which must be past this first however long the projector lags (a later write of
        the user's, remembered for a minute, must not shorten it)."""
        await self._remember_at(self.credentials_key(user_id), CREDENTIALS_TTL_S, position)

    async def _remember_at(self, key: str, ttl_s: int, position: Position) -> None:
        if not position:
            return
        offsets = list(position)
        args: list[str | int] = [ttl_s, len(offsets)]
        for topic, partition, offset in offsets:
            args += [f"{topic}|{partition}", offset]
        await self._script(keys=[key], args=args)

    def visibility_key(self, article_id: str) -> str:
        return f"{self._prefix}:shownpos:{article_id}"

    async def remember_visibility(self, hidden_id: str, position: Position) -> None:
        """``position`` withdrew or deleted the article, or deleted the comment, of id
        ``hidden_id``: anyone's like or collection of the article, or reply to the comment,
        is decided once the read model is past it, so none lands on what was hidden when
        the hiding was answered, however long the projector lags."""
        await self._remember_at(self.visibility_key(hidden_id), VISIBILITY_TTL_S, position)

    async def visibility_changed(self, *ids: str) -> Position:
        """The position of the last withdraw or delete of any of ``ids`` (empty: none in
        the last day)."""
        # Asked on every like: through the pipelined connection, not the pool's client.
        # Redis unwell: the like is a 503 to retry, as every other check of it would be.
        async with redis_translated():
            found = await self._wire.execute([("HGETALL", self.visibility_key(i)) for i in ids])
        position = Position()
        for raw in found:
            if isinstance(raw, Exception):
                raise raw
            fields = cast(list[bytes], raw)
            position = position.merge(self.parse(dict(zip(fields[::2], fields[1::2], strict=True))))
        return position

    async def credentials_changed(self, user_id: str) -> Position:
        """The position of the account's last password change or erasure (empty: none in
        the last week)."""
        async with redis_translated():
            return self.parse(await self._redis.hgetall(self.credentials_key(user_id)))

    @staticmethod
    def parse(raw: Mapping[bytes | str, bytes | str]) -> Position:
        """The position kept in the hash at ``key(user)``."""
        offsets = {}
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else field
            if name == _AT:
                continue
            topic, _, partition = name.rpartition("|")
            offsets[(topic, int(partition))] = int(value)
        return Position(offsets)


class Generations(Protocol):
    """Which generation of a projector's read model to read."""

    async def generation(self, projector: str) -> int: ...

    async def engine(self, projector: str, main: AsyncEngine) -> AsyncEngine:
        """The engine of the store the projector's reads come from (``main`` unless a
        migration has moved them)."""
        ...


class Progress:
    """How far each projector's active generation has applied the log."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        prefix: str,
        generations_ttl_s: float = 2.0,
        engines: Engines | None = None,
    ) -> None:
        self._engine = engine
        self._prefix = prefix
        self._ttl = generations_ttl_s
        self._generations: dict[str, int] = {}
        # Projectors being moved to another database, re-read with the generations: a
        # phase switch reaches every API process within the same few seconds.
        self._migrations: dict[str, Migration] = {}
        self.engines = engines or Engines(migrated_store)
        self._loaded_at = 0.0
        self._reloading = asyncio.Lock()
        # The highest checkpoint seen per (projector, generation, store, topic, partition).
        # A generation's checkpoints in one store only move forward, so a position once
        # passed there stays passed: an authenticated request whose own writes are long
        # applied needs no query. Kept per store: while a migration's phase moves, requests
        # pinned to the phase before still read (and see the progress of) the store the
        # projector now writes first, ahead of the one the next phase reads.
        self._passed: dict[tuple[str, int, str, str, int], int] = {}
        self._store_names: weakref.WeakKeyDictionary[AsyncEngine, str] = weakref.WeakKeyDictionary()

    async def generations(self) -> Mapping[str, int]:
        """The active generation of every projector (re-read every few seconds)."""
        if time.monotonic() - self._loaded_at > self._ttl:
            # Every request in flight finds the copy old at once: one of them reads it.
            async with self._reloading:
                if time.monotonic() - self._loaded_at > self._ttl:
                    await self._reload()
        return dict(self._generations)

    async def _reload(self) -> None:
        """Read the generations and migrations again. If the database cannot say, the copy
        in hand stays (they change seldom, and the requests queued on this reload would
        otherwise each wait out the database in turn), tried again within a second; with
        no copy yet, the request cannot be answered (503)."""
        try:
            async with translated(), self._engine.connect() as conn:
                generations = await active_generations(conn)
                migrations = await all_migrations(conn)
        except (Unavailable, Transient) as exc:
            if not self._loaded_at:
                raise
            if (left_out := SELDOM.due("api.generations_unread")) is not None:
                log.warning("api.generations_unread", error=str(exc), left_out=left_out)
            self._loaded_at = time.monotonic() - self._ttl + 1.0
            return
        self._generations, self._migrations = generations, migrations
        self._loaded_at = time.monotonic()
        await self.engines.keep({m.target_url for m in migrations.values()})

    async def placements(self) -> tuple[Mapping[str, int], Mapping[str, Migration]]:
        """The active generations and the migrations, as one consistent copy."""
        generations = await self.generations()
        return generations, dict(self._migrations)

    async def generation(self, projector: str) -> int:
        return (await self.generations()).get(projector, 1)

    async def engine(self, projector: str, main: AsyncEngine) -> AsyncEngine:
        generations, migrations = await self.placements()
        return self.read_engine(generations, migrations, projector, main)

    def read_engine(
        self,
        generations: Mapping[str, int],
        migrations: Mapping[str, Migration],
        projector: str,
        main: AsyncEngine,
    ) -> AsyncEngine:
        url = moved_reads(migrations, generations, projector)
        return main if url is None else self.engines.get(url)

    def relevant(
        self, projectors: Sequence[tuple[str, Sequence[Family]]], pos: Position
    ) -> Position:
        """The part of ``pos`` in the topics these projectors read."""
        topics = {topic_for(self._prefix, f) for _, families in projectors for f in families}
        return pos.restricted_to(topics)

    async def reached(
        self,
        projectors: Sequence[tuple[str, Sequence[Family]]],
        pos: Position,
        generations: Generations | None = None,
    ) -> bool:
        """Whether every named projector has passed ``pos``: one query, however many."""
        wanted: list[tuple[str, int, Position]] = []
        stores: dict[str, AsyncEngine] = {}
        seen = generations or self
        for name, families in projectors:
            part = pos.restricted_to(topic_for(self._prefix, f) for f in families)
            if part:
                wanted.append((name, await seen.generation(name), part))
                stores[name] = await seen.engine(name, self._engine)
        where = {name: self._store_name(engine) for name, engine in stores.items()}
        if not wanted or self._known_passed(wanted, where):
            return True
        done: dict[tuple[str, str, int], int] = {}
        for engine in set(stores.values()):
            # A migrated projector's checkpoints are in the store its reads come from.
            here = [w for w in wanted if stores[w[0]] is engine]
            done |= await self._checkpoints(here, engine)
        self._note(wanted, where, done)
        return all(done.get((name, t, p), 0) > o for name, _, part in wanted for t, p, o in part)

    def _store_name(self, engine: AsyncEngine) -> str:
        """The store an engine reaches (its URL, password hidden), worked out once."""
        name = self._store_names.get(engine)
        if name is None:
            name = self._store_names[engine] = str(engine.url)
        return name

    def _known_passed(
        self, wanted: Sequence[tuple[str, int, Position]], where: Mapping[str, str]
    ) -> bool:
        passed = self._passed
        return all(
            passed.get((name, gen, where[name], t, p), 0) > o
            for name, gen, part in wanted
            for t, p, o in part
        )

    def _note(
        self,
        wanted: Sequence[tuple[str, int, Position]],
        where: Mapping[str, str],
        done: Mapping[tuple[str, str, int], int],
    ) -> None:
        generation = {name: gen for name, gen, _ in wanted}
        for (name, topic, partition), next_offset in done.items():
            key = (name, generation[name], where[name], topic, partition)
            if next_offset > self._passed.get(key, 0):
                self._passed[key] = next_offset

    async def _checkpoints(
        self, wanted: Sequence[tuple[str, int, Position]], engine: AsyncEngine
    ) -> dict[tuple[str, str, int], int]:
        """The next offset of each (projector, topic, partition) in the given generations."""
        c = checkpoints.c
        stmt = select(c.projector, c.topic, c.partition, c.next_offset).where(
            or_(
                *(
                    and_(
                        c.projector == name,
                        c.generation == gen,
                        c.topic.in_({t for t, _, _ in part}),
                    )
                    for name, gen, part in wanted
                )
            )
        )
        rows = await read_all(engine, stmt)
        return {(r.projector, r.topic, r.partition): r.next_offset for r in rows}

    async def wait(
        self,
        projectors: Sequence[tuple[str, Sequence[Family]]],
        pos: Position,
        timeout_s: float,
        generations: Generations | None = None,
    ) -> bool:
        """True once every named projector has passed ``pos`` in the generation
        ``generations`` names (the active one by default); False if the bound ran out."""
        if not pos:
            return True
        deadline = time.monotonic() + timeout_s
        delay = 0.003
        while True:
            if await self.reached(projectors, pos, generations):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.05)


class Pinned:
    """The active generations as one request sees them, resolved once: a request that
    waited for a projector reads the generation it waited on, even if a rebuilt one is
    switched in meanwhile."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._seen: Mapping[str, int] | None = None
        self._migrations: Mapping[str, Migration] = {}

    async def generation(self, projector: str) -> int:
        if self._seen is None:
            self._seen, self._migrations = await self._progress.placements()
        return self._seen.get(projector, 1)

    async def engine(self, projector: str, main: AsyncEngine) -> AsyncEngine:
        """The store of the phase the request started in: it waits and reads there."""
        await self.generation(projector)
        assert self._seen is not None
        return self._progress.read_engine(self._seen, self._migrations, projector, main)

    async def active(self, projector: str) -> int | None:
        """The active generation, or None while the projector has none yet."""
        await self.generation(projector)
        assert self._seen is not None
        return self._seen.get(projector)


def migrated_store(url: str, *, statement_timeout_s: float | None = None) -> AsyncEngine:
    """An API process's engine for a store a migration moved reads to."""
    return make_read_engine(
        url, pool_size=5, app="bloghub-api-migrated", statement_timeout_s=statement_timeout_s
    )
