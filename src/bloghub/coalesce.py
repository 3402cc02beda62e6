"""Many requests' small questions to one store, sent together.

Each command asks a store a few small things (is this account erased, what does this like
decide on; remember this caller's last write). Asked one by one, every question is a
round trip of its own: a pool checkout, a system call that hands the CPU to the server and
back, a reply parsed. ``Coalesced`` sends them together instead: while ``max_in_flight``
round trips are on their way, what is asked meanwhile waits and leaves in the next, all in
one. Below that a caller waits for its own round trip only, started at once (so a slow
server's delay is not added to the callers queued behind it); under a burst, a few round
trips answer hundreds of callers. (The Kafka producer batches the same way: a bounded
number of requests in flight per broker, the next one filling meanwhile.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Coalesced(Generic[K, V]):
    """``await coalesced(key)``: the answer ``ask`` gives for ``key``, asked together with
    whatever other keys are waiting. ``ask`` gets a batch of keys (duplicates possible) and
    returns one answer per key, in order; if it raises, every caller of that batch gets
    the error (so a check that cannot be made fails closed for each of them)."""

    def __init__(
        self,
        ask: Callable[[list[K]], Awaitable[Sequence[V]]],
        *,
        max_batch: int = 500,
        max_in_flight: int = 2,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._ask = ask
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[K, asyncio.Future[V]]] = []
        self._senders: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K) -> V:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[V] = loop.create_future()
        self._waiting.append((key, answer))
        if len(self._senders) < self._max_in_flight:
            sender = loop.create_task(self._send_all())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await answer

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                # A caller that gave up (a request cancelled) is not asked for.
                await self._send([(k, a) for k, a in batch if not a.done()])
        except asyncio.CancelledError:
            if len(self._senders) <= 1:  # no other sender left to answer the rest
                for _, answer in self._waiting:
                    answer.cancel()
                self._waiting.clear()
            raise
        finally:
            # Out of the count in the very step that found nothing waiting, not when the
            # task's done callback runs a loop turn later: a caller woken meanwhile that
            # asks again would find the senders "in flight", start none, and wait until
            # some unrelated caller came (a request held without an answer).
            task = asyncio.current_task()
            if task is not None:
                self._senders.discard(task)

    async def _send(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        if not batch:
            return
        try:
            answers = await self._ask([k for k, _ in batch])
        except asyncio.CancelledError:
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        if len(answers) != len(batch):
            error = RuntimeError(f"{len(answers)} answers to {len(batch)} questions")
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
            return
        for (_, answer), value in zip(batch, answers, strict=True):
            if not answer.done():
                answer.set_result(value)
