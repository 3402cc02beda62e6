"""Dead letters: a record a projector cannot apply goes to ``<prefix>.dlq`` with its origin
and the error, so the projector can move on and nothing is lost.

A partition whose dead letter could not be sent is read again later (the runner holds it),
so one record may be sent more than once: each is counted once per projector by its
origin (``<prefix>:dlq:sent:<projector>``, a set of ``topic|partition|offset``), and a
record already counted is not sent again.

Every try is bounded (``wait_s``): a queue that does not confirm in time fails the try, so
the runner holds the partition and goes on with the others, instead of waiting as long as
the producer would (aiokafka's idempotent producer retries a batch it has sent for as long
as it lives). The record stays with the producer meanwhile, and a later try of the same
record waits on that delivery rather than sending it again. A delivery not confirmed
within ``delivery_timeout_s``, or that failed, retires its producer (its unsent batches
failed, so it sends nothing more) and the next try starts a fresh one; a request the
retired producer had already handed to a broker may still land. So a second copy in the
topic is possible when that happens, or when the process ends (or loses the partition)
between the send and the count; the count stays one, and readers can tell a copy by its
origin headers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from bloghub.events.topics import DLQ, topic_for
from bloghub.projections.port import RawRecord
from bloghub.settings import Settings

log = structlog.get_logger(__name__)

# (projector, origin): one dead letter.
Letter = tuple[str, str]


def dlq_count_key(prefix: str, projector: str) -> str:
    return f"{prefix}:dlq:count:{projector}"


def dlq_sent_key(prefix: str, projector: str) -> str:
    """The origins of the dead letters counted for ``projector``."""
    return f"{prefix}:dlq:sent:{projector}"


# KEYS: the sent set, the count. ARGV: the origin. Counts each origin once.
_COUNT_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[2])
end
return 1
"""


def building_label(projector: str, generation: int) -> str:
    """How dead letters of a generation being rebuilt are named: apart from the serving
    generation's, so a replay's failures never count against (or hide in) the live ones."""
    return f"{projector}.g{generation}"


def _default(name: str) -> float:
    """A bound's default where no settings are passed: the settings' own default."""
    return float(Settings.model_fields[name].default)


class DeadLetterUnconfirmed(Exception):
    """The dead-letter queue did not confirm a record within the bound: it may still land
    (its producer keeps it until ``delivery_timeout_s``), so the partition is held and the
    record tried again."""


class DeadLetters:
    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        redis: Redis,
        building: int | None = None,
        wait_s: float = _default("append_timeout_s"),
        delivery_timeout_s: float = _default("delivery_timeout_s"),
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._redis = redis
        self._building = building
        self._wait_s = wait_s
        self._delivery_timeout_s = max(delivery_timeout_s, wait_s)
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False
        self._count_once = redis.register_script(_COUNT_ONCE)
        # Handed to a producer and not yet counted: a try after a timeout waits on the same
        # delivery, and one confirmed but not counted (Redis unwell) is only counted.
        self._deliveries: dict[Letter, asyncio.Future[Any]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: Redis, *, building: int | None = None
    ) -> DeadLetters:
        """Bounded as the event log's appends are: each try by ``append_timeout_s``, a
        delivery by ``delivery_timeout_s``."""
        return cls(
            bootstrap=settings.kafka_bootstrap,
            prefix=settings.prefix,
            redis=redis,
            building=building,
            wait_s=settings.append_timeout_s,
            delivery_timeout_s=settings.delivery_timeout_s,
        )

    async def start(self) -> None:
        """Connect now. Raises (``KafkaError``, ``OSError``, ``TimeoutError``) when Kafka
        does not answer within the bound: the caller decides whether to wait."""
        await self._ensure_producer()

    async def close(self) -> None:
        """Let what is in flight be delivered (within the bound), then stop. What is still
        unconfirmed is given up: its partition's checkpoint has not passed it, so whoever
        reads the partition next sends it again."""
        self._closed = True
        async with self._start_lock:  # a start under way ends first, and is stopped here
            producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop(producer, deliver=True)
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def send(self, projector: str, record: RawRecord, error: str) -> None:
        """Returns once the dead letter is durable and counted; only then may the
        checkpoint pass it. Sending the same record again (a retry after a failure) adds
        nothing once it has been counted. ``DeadLetterUnconfirmed`` (or the producer's
        failure) when the queue does not confirm it within the bound."""
        if self._building is not None:
            projector = building_label(projector, self._building)
        origin = f"{record.topic}|{record.partition}|{record.offset}"
        sent = dlq_sent_key(self._prefix, projector)
        if await self._redis.sismember(sent, origin):
            return
        letter = (projector, origin)
        await self._delivered(letter, record, error)
        await self._count_once(keys=[sent, dlq_count_key(self._prefix, projector)], args=[origin])
        self._deliveries.pop(letter, None)

    async def _delivered(self, letter: Letter, record: RawRecord, error: str) -> None:
        """Wait, within the bound, until ``letter`` is confirmed in the topic: the delivery
        of an earlier try if it may still succeed, else a new one."""
        try:
            async with asyncio.timeout(self._wait_s):
                delivery = self._deliveries.get(letter)
                if delivery is None or _failed(delivery):
                    delivery = await self._hand_over(letter, record, error)
                    self._deliveries[letter] = delivery
                await asyncio.shield(delivery)
        except TimeoutError as exc:
            raise DeadLetterUnconfirmed(
                f"the dead-letter queue did not confirm within {self._wait_s} s"
            ) from exc

    async def _hand_over(
        self, letter: Letter, record: RawRecord, error: str
    ) -> asyncio.Future[Any]:
        producer = await self._ensure_producer()
        delivery: asyncio.Future[Any] = await producer.send(
            topic_for(self._prefix, DLQ),
            value=record.value,
            key=letter[0].encode(),
            headers=_headers(letter[0], record, error),
        )
        bound = asyncio.get_running_loop().call_later(
            self._delivery_timeout_s, self._expire, producer, delivery
        )

        def answered(done: asyncio.Future[Any]) -> None:
            bound.cancel()
            if _failed(done):
                # Its id or sequence numbers may no longer match the broker's: every later
                # batch would fail alike.
                self._retire(producer, "delivery_failed")
                if self._deliveries.get(letter) is done:
                    del self._deliveries[letter]

        delivery.add_done_callback(answered)
        return delivery

    def _expire(self, producer: AIOKafkaProducer, delivery: asyncio.Future[Any]) -> None:
        if not delivery.done():
            self._retire(producer, "delivery_timeout")

    def _retire(self, producer: AIOKafkaProducer, reason: str) -> None:
        """Stop ``producer`` from sending anything more; the next try starts a fresh one."""
        if self._producer is producer:
            self._producer = None
            log.warning("dead_letters.producer_replaced", reason=reason)
            task = asyncio.ensure_future(self._stop(producer, deliver=False))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._start_lock:
            if self._closed:
                # A producer started now would never be stopped.
                raise DeadLetterUnconfirmed("the dead-letter queue is closed")
            if self._producer is None:
                self._producer = await self._started_producer()
            return self._producer

    async def _started_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(self._request_timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=self._wait_s)
        except BaseException:
            # A half-started producer keeps its connections (and maybe its sender) to the
            # end of the process unless stopped.
            with contextlib.suppress(Exception):
                await asyncio.shield(producer.stop())
            raise
        return producer

    @property
    def _request_timeout_s(self) -> float:
        """One request's bound, so that a retired producer's last requests end soon."""
        return max(1.0, self._wait_s)

    async def _stop(self, producer: AIOKafkaProducer, *, deliver: bool) -> None:
        """Stop ``producer``, after letting it deliver what it holds (within the bound)
        if asked. Whatever is still unsent is failed first: its own stop waits for every
        batch, and an idempotent producer retries a batch without end."""
        if deliver:
            with contextlib.suppress(TimeoutError, KafkaError):
                await asyncio.wait_for(producer.flush(), timeout=self._wait_s)
        await self._abandon(producer)
        try:
            await asyncio.wait_for(producer.stop(), timeout=self._request_timeout_s + self._wait_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            log.info("dead_letters.producer_stop_failed", error=repr(exc))

    async def _abandon(self, producer: AIOKafkaProducer) -> None:
        """Make ``producer`` send nothing more, and fail whatever it still holds.

        aiokafka has no public way to do this. Its sender task, once cancelled, waits for
        the requests in flight (each bounded by the request timeout) and sends nothing
        after; then the accumulator's ``fail_all`` (what aiokafka itself calls when its
        sender dies) ends every batch it held, so ``stop`` no longer waits for them."""
        sender = producer._sender.sender_task
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.wait({sender}, timeout=self._request_timeout_s + self._wait_s)
        accumulator = producer._message_accumulator
        held = [
            *(b for q in accumulator._batches.values() for b in q),
            *accumulator._pending_batches,
        ]
        accumulator.fail_all(KafkaError("the dead-letter producer was retired"))
        for batch in held:
            # Read here: nothing else waits on a failed batch's drain, and asyncio would
            # report each as an exception never retrieved.
            if batch._drain_waiter.done() and not batch._drain_waiter.cancelled():
                batch._drain_waiter.exception()


def _failed(delivery: asyncio.Future[Any]) -> bool:
    """Ended without a confirmation (and that failure is read, so asyncio does not report
    it as never retrieved)."""
    return delivery.done() and (delivery.cancelled() or delivery.exception() is not None)


def _headers(projector: str, record: RawRecord, error: str) -> list[tuple[str, bytes]]:
    return [
        ("projector", projector.encode()),
        ("origin_topic", record.topic.encode()),
        ("origin_partition", str(record.partition).encode()),
        ("origin_offset", str(record.offset).encode()),
        ("origin_timestamp", str(record.timestamp).encode()),
        ("error", error[:2000].encode()),
        *[(k, v) for k, v in (record.headers or ()) if k in ("type", "version", "event_id")],
    ]
