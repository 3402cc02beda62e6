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
from aiokafka.errors import KafkaError

from bloghub.errors import Unavailable
from bloghub.events.base import Envelope, EventRegistry, registry
from bloghub.events.codec import encode
from bloghub.events.position import Position
from bloghub.events.topics import topic_for
from bloghub.settings import Settings

log = structlog.get_logger(__name__)


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
        in-sync replicas. Raises ``Unavailable`` if that cannot happen within the bound."""
        if not envelopes:
            return Position()
        try:
            async with asyncio.timeout(self._timeout_s):
                producer = await self._ensure_producer()
                futures = [await self._send(producer, env) for env in envelopes]
                metas = await asyncio.gather(*futures)
        except (TimeoutError, KafkaError) as exc:
            log.warning("event_log.append_failed", error=repr(exc), events=len(envelopes))
            raise Unavailable("the event log is not reachable; nothing was recorded") from exc
        offsets: dict[tuple[str, int], int] = {}
        for meta in metas:
            key = (meta.topic, meta.partition)
            offsets[key] = max(meta.offset, offsets.get(key, -1))
        return Position(offsets)

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
