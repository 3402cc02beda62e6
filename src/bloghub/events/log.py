"""EventLog: appends envelopes to Kafka and returns where they landed.

The producer is idempotent with acks=all. Every append is bounded in time, and its answer
never claims more than the producer knows:

- ``Unavailable`` (*nothing was recorded*) only when no record reached the producer, or
  when the broker refused every record for its content (the same bytes are refused on
  every try, so no earlier try can have landed);
- ``Indeterminate`` (*unconfirmed*) when records were handed over and the log has not
  confirmed them: they may still land. Its ``outcome`` resolves to the position once the
  log answers, or fails with ``NotRecorded`` (surely not in the log) or ``Undelivered``
  (the producer gave up; an earlier try may have landed).

aiokafka's idempotent producer retries a batch it has sent for as long as it lives (its
``request_timeout_ms`` expires only batches that never left for want of a leader), so the
producer alone gives no bound on when a record may still land. ``delivery_timeout_s`` is
that bound: a record not confirmed by then fails its outcome, and the producer holding it
is retired at once, its unsent batches failed, so it can no longer send them. What it can
no longer stop is a request already in a broker's hands, which lands when that broker
handles it. Reservations are held longer than this bound (see ``Settings``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    RecordListTooLargeError,
    UnknownProducerId,
    UnsupportedForMessageFormatError,
)

from bloghub.errors import Unavailable
from bloghub.events.base import Envelope, EventRegistry, registry
from bloghub.events.codec import encode
from bloghub.events.position import Position
from bloghub.events.topics import KeyPartitioner, topic_for
from bloghub.settings import Settings

log = structlog.get_logger(__name__)

HandedOver = Callable[[asyncio.Future[Position]], None]

# After one of these the producer's id and sequence numbers no longer match the broker's
# (after a broker restart that lost the tail of a partition, for one): every later batch
# would be refused the same way, so the producer is replaced by one with a fresh id.
PRODUCER_BROKEN = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)

# Refusals that prove the batch is not in the log. The content ones hold for the same bytes
# on every try. An out-of-order sequence number means the broker does not have this batch:
# had an earlier try of it landed, the retry would be told "duplicate" (aiokafka keeps one
# batch per partition in flight, well within the broker's memory of recent batches).
NOT_IN_THE_LOG = (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnsupportedForMessageFormatError,
    OutOfOrderSequenceNumber,
)


class NotRecorded(Exception):
    """The broker refused every record of a write in a way that proves none is in the log."""


class Undelivered(Exception):
    """The producer stopped trying without a confirmation: an earlier try may have landed
    (the broker took it but its answer was lost), so whether the write is in the log is
    unknown. The producer can no longer deliver it."""


class Indeterminate(Unavailable):
    """The log did not confirm a write in time, yet may still record it: ``outcome``
    resolves to the position once the log answers, or fails (``NotRecorded``,
    ``Undelivered``) if it does not record it. ``then`` carries the outcome on, to a
    command's result or a response, so a caller that keeps the question open can learn
    the real answer later."""

    code = "unconfirmed"
    retry_after_s = 1

    def __init__(self, outcome: asyncio.Future[Any]) -> None:
        super().__init__(
            "the event log did not confirm the write in time; it may still be recorded, "
            "so check before retrying"
        )
        self.outcome = outcome

    def then(self, step: Callable[[Any], Any]) -> Indeterminate:
        """The same unconfirmed write, its outcome mapped by ``step`` (sync or async)."""
        source = self.outcome

        async def carry() -> Any:
            result = step(await source)
            return await result if asyncio.iscoroutine(result) else result

        return Indeterminate(_kept(asyncio.ensure_future(carry())))


def _kept(task: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """A future that may end with nobody awaiting it: its failure is logged once here
    instead of as "exception never retrieved"."""
    task.add_done_callback(_note_failure)
    return task


def _note_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("event_log.write_not_confirmed", error=repr(task.exception()))


def _position_of(futures: Sequence[asyncio.Future[Any]]) -> Position:
    """The position of every record, all of them answered; ``NotRecorded`` if every one
    was refused in a way that proves it is not in the log, ``Undelivered`` otherwise."""
    answers = [
        asyncio.CancelledError() if f.cancelled() else (f.exception() or f.result())
        for f in futures
    ]
    failures = [a for a in answers if isinstance(a, BaseException)]
    if failures:
        failed: NotRecorded | Undelivered
        if len(failures) == len(answers) and all(isinstance(f, NOT_IN_THE_LOG) for f in failures):
            failed = NotRecorded(repr(failures[0]))
        else:
            failed = Undelivered(repr(failures[0]))
        failed.__cause__ = failures[0]
        raise failed
    offsets: dict[tuple[str, int], int] = {}
    metas: list[Any] = answers
    for meta in metas:
        key = (meta.topic, meta.partition)
        offsets[key] = max(meta.offset, offsets.get(key, -1))
    return Position(offsets)


class EventLog:
    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        registry: EventRegistry,
        timeout_s: float,
        delivery_timeout_s: float | None = None,
        client_id: str = "bloghub",
        linger_ms: int = 0,
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._registry = registry
        self._timeout_s = timeout_s
        self._delivery_timeout_s = max(delivery_timeout_s or 0.0, timeout_s)
        self._client_id = client_id
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout_s: float | None = None) -> EventLog:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            registry=registry,
            timeout_s=timeout_s or settings.append_timeout_s,
            delivery_timeout_s=settings.delivery_timeout_s,
            linger_ms=settings.producer_linger_ms,
        )

    async def start(self) -> None:
        """Connect now if Kafka answers; otherwise the first append retries the connection."""
        try:
            await self._ensure_producer()
        except Unavailable:
            log.warning("event_log.start_deferred", bootstrap=self._bootstrap)

    async def close(self) -> None:
        """Deliver what is held (within the append bound) and stop. An append after this is
        ``Unavailable``: it must not start a producer that nothing would stop."""
        self._closed = True
        async with self._start_lock:  # a start under way ends first, and is stopped here
            producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer, give_up=False)
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def ping(self, timeout_s: float = 1.0) -> bool:
        """True if a broker answers a metadata request now."""
        try:
            async with asyncio.timeout(timeout_s):
                producer = await self._ensure_producer()
                await producer.client.fetch_all_metadata()
            return True
        except (TimeoutError, KafkaError, Unavailable, OSError):
            return False

    async def append(
        self, envelopes: Sequence[Envelope], *, handed_over: HandedOver | None = None
    ) -> Position:
        """Append in order (per key) and wait for every record to be acknowledged by all
        in-sync replicas, within the bound.

        ``Unavailable`` when nothing was recorded (no record reached the producer, or the
        broker refused them all for their content); ``Indeterminate`` when records were
        handed over but not confirmed: they may still be recorded, and the exception's
        ``outcome`` tells which once the log answers. ``handed_over`` is called with that
        outcome as soon as any record reached the producer, whatever becomes of this call
        (a timeout, a cancelled request), so what hangs on the write can follow the log."""
        if not envelopes:
            return Position()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout_at(deadline):
                producer = await self._ensure_producer()
                for env in envelopes:
                    futures.append(await self._send(producer, env))
        except (TimeoutError, KafkaError) as exc:
            log.warning("event_log.append_failed", error=repr(exc), handed_over=len(futures))
            if not futures:
                raise Unavailable("the event log is not reachable; nothing was recorded") from exc
            raise Indeterminate(self._outcome(producer, futures, handed_over)) from exc
        except BaseException:
            # Cancelled (or failed otherwise) between two records: those handed over may
            # still land, so what hangs on them (a reserved key) follows the log.
            if futures:
                self._outcome(producer, futures, handed_over)
            raise
        outcome = self._outcome(producer, futures, handed_over)
        if not outcome.done():
            # Not cancelled with this call: the outcome follows the write, not the request.
            await asyncio.wait((outcome,), timeout=max(0.0, deadline - loop.time()))
        if not outcome.done():
            log.warning("event_log.append_unconfirmed", events=len(envelopes))
            raise Indeterminate(outcome)
        try:
            return outcome.result()
        except NotRecorded as exc:
            raise Unavailable("the event log refused the write; nothing was recorded") from exc
        except Undelivered as exc:
            # The log answered, but not with a yes or a no that covers every record.
            raise Indeterminate(outcome) from exc

    def _outcome(
        self,
        producer: AIOKafkaProducer,
        futures: Sequence[asyncio.Future[Any]],
        handed_over: HandedOver | None,
    ) -> asyncio.Future[Position]:
        """The records' position, or their failure: ``Undelivered`` once the delivery
        bound passes, when the producer is retired so it cannot deliver them later.
        Built from the records' own callbacks, with no task of its own: every command
        waits on one."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[Position] = loop.create_future()
        left = len(futures)

        def expired() -> None:
            if not outcome.done():
                self._retire(producer, "delivery_timeout")
                outcome.set_exception(
                    Undelivered(
                        f"not confirmed within {self._delivery_timeout_s} s; the producer gave up"
                    )
                )

        bound = loop.call_later(self._delivery_timeout_s, expired)
        outcome.add_done_callback(lambda _: bound.cancel())

        def answered(record: asyncio.Future[Any]) -> None:
            nonlocal left
            if not record.cancelled():
                record.exception()  # read even after the bound: a late failure is no news
            left -= 1
            if left or outcome.done():
                return
            try:
                outcome.set_result(_position_of(futures))
            except (NotRecorded, Undelivered) as exc:
                if isinstance(exc.__cause__, PRODUCER_BROKEN):
                    self._retire(producer, repr(exc.__cause__))
                outcome.set_exception(exc)

        for record in futures:
            record.add_done_callback(answered)
        _kept(outcome)
        if handed_over is not None:
            handed_over(outcome)
        return outcome

    def _retire(self, producer: AIOKafkaProducer, reason: str) -> None:
        if self._producer is producer:
            self._producer = None  # the next append starts a producer with a fresh id
            log.warning("event_log.producer_replaced", reason=reason)
            task = asyncio.ensure_future(self._stop(producer, give_up=True))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _stop(self, producer: AIOKafkaProducer, *, give_up: bool) -> None:
        """Stop ``producer``, after letting it deliver what it holds (within the append
        bound) unless it is being given up. Whatever is still unsent is then failed: its
        own stop waits for delivery, and an idempotent producer retries without end, so a
        stop cut short by a timeout would leave it sending behind our back."""
        if not give_up:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await producer.flush()
            except (TimeoutError, KafkaError) as exc:
                log.info("event_log.flush_on_close_failed", error=repr(exc))
        await self._abandon(producer)
        try:
            async with asyncio.timeout(self._request_timeout_s + self._timeout_s):
                await producer.stop()
        except (TimeoutError, KafkaError, OSError) as exc:
            log.info("event_log.producer_stop_failed", error=repr(exc))

    async def _abandon(self, producer: AIOKafkaProducer) -> None:
        """Make ``producer`` send nothing more, and fail whatever it still holds.

        aiokafka has no public way to do this. Its sender task, once cancelled, waits for
        the requests in flight (each bounded by request_timeout_ms) and sends nothing after;
        then the accumulator's fail_all (what aiokafka itself calls when its sender dies)
        ends every batch it held, so stop() no longer waits for them."""
        sender = producer._sender.sender_task
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.wait({sender}, timeout=self._request_timeout_s + self._timeout_s)
        producer._message_accumulator.fail_all(KafkaError("the producer was retired"))

    @property
    def _request_timeout_s(self) -> float:
        return max(1000, int(self._timeout_s * 1000) - 300) / 1000

    async def _send(self, producer: AIOKafkaProducer, env: Envelope) -> asyncio.Future[Any]:
        value, headers = encode(env)
        topic = topic_for(self._prefix, self._registry.family(env.type))
        fut: asyncio.Future[Any] = await producer.send(
            topic, value=value, key=env.aggregate_id.encode(), headers=headers
        )
        return fut

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._start_lock:
            if self._producer is not None:
                return self._producer
            if self._closed:
                raise Unavailable("the event log is closed")
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=self._linger_ms,
                request_timeout_ms=int(self._request_timeout_s * 1000),
                retry_backoff_ms=50,
                partitioner=KeyPartitioner(),
            )
            try:
                await asyncio.wait_for(producer.start(), timeout=self._timeout_s)
            except BaseException as exc:
                # Stopped whatever ended the start, the caller's deadline (a cancellation)
                # included: a half-started producer would keep its sender task and broker
                # connections to the end of the process.
                with contextlib.suppress(Exception):
                    await asyncio.shield(producer.stop())
                if isinstance(exc, TimeoutError | KafkaError | OSError):
                    raise Unavailable("the event log is not reachable") from exc
                raise
            self._producer = producer
            return producer
