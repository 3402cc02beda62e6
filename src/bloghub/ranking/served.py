"""The ranking as each API process serves it: the last result read from Redis, kept here
as pre-encoded bodies (one per ``limit`` asked), so a request costs no round trip and
never waits on the job.

A follower checks the result's version every ``check_s`` (one ``HGET``) and reads the
result again only when it moved. This is not the invalidation-driven tier in front of the
cache (``adapters/redis/local_tier.py``), which empties itself whenever its subscription
breaks, because a copy it cannot hear invalidations for may be wrong. The ranking is a
snapshot with a version, not a copy of an entry that changes under it: an old one is only
older. So with Redis out of reach, or the result gone from it (its data lost), this keeps
serving the last good copy, and says so (``stale``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.responses import Response

from bloghub.ranking.entries import utc_text
from bloghub.ranking.hidden import ErasedAuthors, HiddenArticles
from bloghub.ranking.lock import RankingKeys

log = structlog.get_logger(__name__)

VERSION_HEADER = "Bloghub-Ranking-Version"
STALE_HEADER = "Bloghub-Stale"  # the read-your-writes header of the same meaning


@dataclass(slots=True)
class Snapshot:
    version: int
    computed_at: str | None
    entries: list[bytes]  # each entry encoded once
    # The version with the computation's own time: a Redis that lost its data (restarted
    # without persistence, flushed) counts versions from 1 again, and the first new result
    # must not pass for the copy held here.
    identity: tuple[int, bytes | str | None] = (0, None)
    answers: dict[tuple[int, bool], Encoded] = field(default_factory=dict)  # (limit, stale)

    def body(self, limit: int) -> bytes:
        tail = b'],"version":%d,"computed_at":%s}' % (self.version, orjson.dumps(self.computed_at))
        return b'{"articles":[' + b",".join(self.entries[:limit]) + tail

    def answer(self, limit: int, stale: bool) -> Encoded:
        """The whole answer for ``limit``, body and headers encoded once per snapshot."""
        found = self.answers.get((limit, stale))
        if found is None:
            found = self.answers[(limit, stale)] = Encoded(
                self.body(limit),
                {VERSION_HEADER: str(self.version), **({STALE_HEADER: "true"} if stale else {})},
            )
        return found


class Encoded:
    """A JSON answer's body and headers as they go on the wire."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ]

    def response(self) -> Response:
        return _Sent(self)


class _Sent(Response):
    """A response of pre-encoded parts: nothing is rendered or encoded per request."""

    def __init__(self, encoded: Encoded) -> None:
        self.status_code = 200
        self.background = None
        self.body = encoded.body
        # A copy: middleware may add headers to the list it is sent (CORS does).
        self.raw_headers = list(encoded.raw_headers)


EMPTY = Snapshot(0, None, [])


class HotRanking:
    def __init__(self, redis: Redis, *, prefix: str, check_s: float) -> None:
        self._redis = redis
        self._keys = RankingKeys(prefix)
        self._hidden = HiddenArticles(redis, prefix=prefix)
        self._erased = ErasedAuthors(redis, prefix=prefix)
        self.check_s = check_s
        self.snapshot: Snapshot | None = None  # None: never read
        self.stale = True  # the last check failed (or none was made yet)

    async def current(self) -> Snapshot | None:
        """The copy to serve; the first request of a process reads it if the follower
        has not yet (one Redis read, once)."""
        if self.snapshot is None:
            await self.refresh()
        return self.snapshot

    async def refresh(self) -> None:
        try:
            version, stamp = await self._redis.hmget(self._keys.result, ["version", "computed_at"])
            if version is None and self.snapshot is not None and self.snapshot.version:
                # The result is gone (Redis lost its data): the copy held is only older.
                # Served, marked stale, until the job stores a new one.
                self._serving_last_copy("result missing")
                return
            if version is None:
                self.snapshot = EMPTY
            elif self.snapshot is None or (int(version), stamp) != self.snapshot.identity:
                await self._load()
            self.stale = False
        except (RedisError, OSError) as exc:
            self._serving_last_copy(repr(exc))

    def _serving_last_copy(self, why: str) -> None:
        if not self.stale:
            log.warning("ranking.serving_last_copy", error=why)
        self.stale = True

    async def _load(self) -> None:
        version, body, computed_at = await self._redis.hmget(
            self._keys.result, ["version", "body", "computed_at"]
        )
        if version is None or body is None:
            self.snapshot = EMPTY
            return
        when = None
        if computed_at is not None:
            when = utc_text(datetime.fromtimestamp(float(computed_at), UTC))
        # Withdrawn or deleted since the run: out at once, not at the next run; an author
        # erased since: shown erased at once (hidden.py).
        hidden = await self._hidden.members()
        erased = await self._erased.members()
        entries = []
        for e in orjson.loads(body):
            if e.get("id") in hidden:
                continue
            author = e.get("author")
            if isinstance(author, dict) and author.get("id") in erased:
                e["author"] = {"id": author["id"], "nickname": None, "deleted": True}
            entries.append(orjson.dumps(e))
        self.snapshot = Snapshot(int(version), when, entries, (int(version), computed_at))

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.check_s)
