"""Reads to count, buffered in the API process and appended to the log in batches.

Serving an article detail only puts a small tuple in a bounded in-memory buffer (no I/O,
no await): the background task appends what is buffered as ``article.read`` events every
``flush_every_s`` or as soon as ``batch`` are waiting. The projector de-duplicates (once
per reader, article and hour), so the buffer does not.

What a crash can lose is bounded: the reads buffered since the last append, at most
``flush_every_s`` worth and never more than ``max_pending``. A full buffer (the log down
or too slow) drops new reads rather than hold memory or slow readers; both are counted
in ``dropped`` and logged. Counts are the reads that reached the log, so a loss shows as
a slightly low read count, never a wrong like or collection count.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections import deque

import structlog

from bloghub.events.base import envelop
from bloghub.events.interactions import ArticleRead
from bloghub.events.log import EventLog

log = structlog.get_logger(__name__)


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
    ) -> None:
        self._log = event_log
        self._batch = batch
        self._every = flush_every_s
        self._pending: deque[tuple[str, str, str]] = deque()
        self._max = max_pending
        self._wake = asyncio.Event()
        self.appended = 0
        self.dropped = 0

    def note(self, article_id: str, author_id: str, reader: str) -> None:
        """Count a read served: never blocks, never fails the request."""
        if reader == author_id:
            return  # an author's own reads are not counted
        if len(self._pending) >= self._max:
            self.dropped += 1
            return
        self._pending.append((article_id, author_id, reader))
        if len(self._pending) >= self._batch:
            self._wake.set()

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
                return
            self.appended += len(taken)
