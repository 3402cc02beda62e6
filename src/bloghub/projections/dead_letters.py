"""Dead letters: a record a projector cannot apply goes to ``<prefix>.dlq`` with its origin
and the error, so the projector can move on and nothing is lost.

A partition whose dead letter could not be sent is read again later (the runner holds it),
so one record may be sent more than once: each is counted once per projector by its
origin (``<prefix>:dlq:sent:<projector>``, a set of ``topic|partition|offset``), and a
record already counted is not sent again. A second copy in the topic is possible only if
the process ends (or loses the partition) between the send and the count; readers can
tell it by its origin headers.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bloghub.events.topics import DLQ, topic_for
from bloghub.projections.port import RawRecord


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


class DeadLetters:
    def __init__(
        self, *, bootstrap: str, prefix: str, redis: Redis, building: int | None = None
    ) -> None:
        self._prefix = prefix
        self._redis = redis
        self._building = building
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        self._count_once = redis.register_script(_COUNT_ONCE)
        # (projector, origin) in the topic but not yet counted: a retry only counts them.
        self._uncounted: set[tuple[str, str]] = set()

    async def start(self) -> None:
        try:
            await self._producer.start()
        except BaseException:
            # A half-started producer keeps its connections (and maybe its sender) to the
            # end of the process unless stopped.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._producer.stop())
            raise

    async def close(self) -> None:
        await self._producer.stop()

    async def send(self, projector: str, record: RawRecord, error: str) -> None:
        """Returns once the dead letter is durable and counted; only then may the
        checkpoint pass it. Sending the same record again (a retry after a failure) adds
        nothing once it has been counted."""
        if self._building is not None:
            projector = building_label(projector, self._building)
        origin = f"{record.topic}|{record.partition}|{record.offset}"
        sent = dlq_sent_key(self._prefix, projector)
        if await self._redis.sismember(sent, origin):
            return
        if (projector, origin) not in self._uncounted:
            await self._publish(projector, record, error)
            self._uncounted.add((projector, origin))
        await self._count_once(keys=[sent, dlq_count_key(self._prefix, projector)], args=[origin])
        self._uncounted.discard((projector, origin))

    async def _publish(self, projector: str, record: RawRecord, error: str) -> None:
        headers = [
            ("projector", projector.encode()),
            ("origin_topic", record.topic.encode()),
            ("origin_partition", str(record.partition).encode()),
            ("origin_offset", str(record.offset).encode()),
            ("origin_timestamp", str(record.timestamp).encode()),
            ("error", error[:2000].encode()),
            *[(k, v) for k, v in (record.headers or ()) if k in ("type", "version", "event_id")],
        ]
        await self._producer.send_and_wait(
            topic_for(self._prefix, DLQ),
            value=record.value,
            key=projector.encode(),
            headers=headers,
        )
