"""EventLog: appends envelopes to Kafka and returns where they landed.

The producer is idempotent with acks=all. Every append is bounded in time: with Kafka
unreachable the caller gets ``Unavailable`` quickly instead of a hang, and because the
producer's own request timeout is shorter than our bound, a batch that was not delivered
in time expires inside the producer rather than landing later behind the caller's back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from bloghub.errors import Unavailable
from bloghub.events.base import Envelope, EventRegistry, registry
from bloghub.events.codec import encode
from bloghub.events.position import Position
from bloghub.events.topics import topic_for
from bloghub.settings import Settings

log = structlog.get_logger(__name__)

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


class Indeterminate(Unavailable):
    """The log did not confirm a write in time, yet may still record it: ``outcome``
    resolves to the position once the log answers, or fails if it never records it."""

    code = "unconfirmed"

    def __init__(self, outcome: asyncio.Future[Position]) -> None:
        super().__init__(
            "the event log did not confirm the write in time; it may still be recorded, "
            "so check before retrying"
        )
        self.outcome = outcome


def _positions(futures: Sequence[asyncio.Future[Any]]) -> asyncio.Future[Position]:
    """One future for the position of all records, kept running even if nobody waits."""

    async def gather() -> Position:
        offsets: dict[tuple[str, int], int] = {}
        for meta in await asyncio.gather(*futures):
            key = (meta.topic, meta.partition)
            offsets[key] = max(meta.offset, offsets.get(key, -1))
        return Position(offsets)

    task = asyncio.ensure_future(gather())
    task.add_done_callback(_note_failure)
    return task


def _note_failure(task: asyncio.Future[Position]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("event_log.write_not_recorded", error=repr(task.exception()))


class EventLog:
    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        registry: EventRegistry,
        timeout_s: float,
        client_id: str = "bloghub",
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._registry = registry
        self._timeout_s = timeout_s
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout_s: float | None = None) -> EventLog:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            registry=registry,
            timeout_s=timeout_s or settings.append_timeout_s,
        )

    async def start(self) -> None:
        """Connect now if Kafka answers; otherwise the first append retries the connection."""
        try:
            await self._ensure_producer()
        except Unavailable:
            log.warning("event_log.start_deferred", bootstrap=self._bootstrap)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
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

    async def append(self, envelopes: Sequence[Envelope]) -> Position:
        """Append in order (per key) and wait for every record to be acknowledged by all
        in-sync replicas, within the bound.

        ``Unavailable`` when nothing was handed to the producer (nothing will be recorded);
        ``Indeterminate`` when records were handed over but not confirmed in time: the
        producer keeps retrying them, so they may still be recorded, and the exception's
        ``outcome`` tells which once the log answers."""
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
            raise Indeterminate(self._outcome(producer, futures)) from exc
        outcome = self._outcome(producer, futures)
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), max(0.0, deadline - loop.time()))
        except TimeoutError as exc:
            log.warning("event_log.append_unconfirmed", events=len(envelopes))
            raise Indeterminate(outcome) from exc
        except KafkaError as exc:
            raise Unavailable("the event log refused the write; nothing was recorded") from exc

    def _outcome(
        self, producer: AIOKafkaProducer, futures: Sequence[asyncio.Future[Any]]
    ) -> asyncio.Future[Position]:
        outcome = _positions(futures)
        outcome.add_done_callback(lambda done: self._retire_if_broken(producer, done))
        return outcome

    def _retire_if_broken(self, producer: AIOKafkaProducer, done: asyncio.Future[Position]) -> None:
        if done.cancelled() or not isinstance(done.exception(), PRODUCER_BROKEN):
            return
        if self._producer is producer:
            self._producer = None  # the next append starts a producer with a fresh id
            log.warning("event_log.producer_replaced", error=repr(done.exception()))
            task = asyncio.ensure_future(self._stop_quietly(producer))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _stop_quietly(self, producer: AIOKafkaProducer) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await producer.stop()
        except (TimeoutError, KafkaError, OSError) as exc:
            log.info("event_log.retired_producer_stop_failed", error=repr(exc))

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
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                request_timeout_ms=max(1000, int(self._timeout_s * 1000) - 300),
                retry_backoff_ms=50,
            )
            try:
                await asyncio.wait_for(producer.start(), timeout=self._timeout_s)
            except (TimeoutError, KafkaError, OSError) as exc:
                await producer.stop()
                raise Unavailable("the event log is not reachable") from exc
            self._producer = producer
            return producer
