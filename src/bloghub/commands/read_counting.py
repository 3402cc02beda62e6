"""Reads to count, buffered in the API process and appended to the log in batches.

Serving an article detail only puts a small tuple in a bounded in-memory buffer (no I/O,
no await): the background task appends what is buffered as ``article.read`` events every
``flush_every_s`` or as soon as ``batch`` are waiting. The projector de-duplicates (once
per reader, article and hour). The buffer only keeps a reader's repeated reads of an
article within ``repeat_s`` from being appended again by this process: none of them could
count (the projector counts a reader once an hour), yet each would cost an append and a
projector write. A process that appended a read the projector did not count (another
process had counted one of the same reader less than an hour before) may hold back, for at
most ``repeat_s``, a read that would have counted: a read count comes out a little low,
never high.

What a crash can lose is bounded: the reads buffered since the last append, at most
``flush_every_s`` worth and never more than ``max_pending``. A full buffer (the log down
or too slow) drops new reads rather than hold memory or slow readers; both are counted
in ``dropped`` and logged. Counts are the reads that reached the log, so a loss shows as
a slightly low read count, never a wrong like or collection count.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import structlog

from bloghub.events.base import envelop
from bloghub.events.interactions import ArticleRead
from bloghub.events.log import EventLog

log = structlog.get_logger(__name__)

REMEMBERED = 100_000  # (article, reader) pairs kept for ``repeat_s``, at most


@functools.lru_cache(maxsize=4096)  # a client reads many articles: one HMAC for them all
def anonymous_reader(secret: bytes, client_key: str) -> str:
    """A reader without an account, as the log names them: a keyed hash of their client
    key (address and user agent), so the log holds no address and nobody without the
    secret can link a hash back to one."""
    digest = hmac.new(secret, client_key.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return "anon:" + digest.hexdigest()[:32]


class ReadBuffer:
    def __init__(
        self,
        event_log: EventLog,
        *,
        batch: int = 500,
        flush_every_s: float = 1.0,
        max_pending: int = 20_000,
        repeat_s: float = 60.0,
        remembered: int = REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = event_log
        self._batch = batch
        self._every = flush_every_s
        self._pending: deque[tuple[str, str, str]] = deque()
        self._max = max_pending
        self._repeat_s = repeat_s
        self._remembered = remembered
        self._clock = clock
        # (article, reader) -> when a read of theirs was last taken to append, oldest first.
        self._taken: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._wake = asyncio.Event()
        self.appended = 0
        self.dropped = 0
        self.repeated = 0  # not appended: the same reader's read of the article was, lately

    def note(self, article_id: str, author_id: str, reader: str) -> None:
        """Count a read served: never blocks, never fails the request."""
        if reader == author_id:
            return  # an author's own reads are not counted
        key = (article_id, reader)
        if self._repeat_s > 0 and self._lately(key):
            self.repeated += 1
            return
        if len(self._pending) >= self._max:
            self.dropped += 1
            # Never appended, so not taken: the reader's next read is no repeat of it.
            self._taken.pop(key, None)
            return
        self._pending.append((article_id, author_id, reader))
        if len(self._pending) >= self._batch:
            self._wake.set()

    def _lately(self, key: tuple[str, str]) -> bool:
        """Whether ``key`` was taken within ``repeat_s``; if not, it is taken now."""
        now = self._clock()
        taken = self._taken
        last = taken.get(key)
        if last is not None and now - last < self._repeat_s:
            return True
        taken.pop(key, None)
        taken[key] = now
        # Oldest first: forget what is past the window, and the oldest past the bound.
        while len(taken) > self._remembered or now - next(iter(taken.values())) >= self._repeat_s:
            taken.popitem(last=False)
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Append what is buffered until told to stop, then once more (the drain)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._every):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            taken = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
            envelopes = [
                envelop(
                    ArticleRead(article_id=a, author_id=au, reader=r),
                    actor_id=None,
                    request_id=None,
                )
                for a, au, r in taken
            ]
            try:
                await self._log.append(envelopes)
            except Exception as exc:
                # Lost, not kept: the log is unwell, and holding them would only make the
                # buffer fill and drop newer reads instead.
                self.dropped += len(taken)
                log.warning("reads.append_failed", reads=len(taken), error=repr(exc))
                for article_id, _, reader in taken:
                    self._taken.pop((article_id, reader), None)  # the next read may go
                return
            self.appended += len(taken)
