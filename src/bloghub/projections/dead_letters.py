"""Dead letters: a record a projector cannot apply goes to ``<prefix>.dlq`` with its origin
and the error, so the projector can move on and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bloghub.events.topics import DLQ, topic_for
from bloghub.projections.port import RawRecord


def dlq_count_key(prefix: str, projector: str) -> str:
    return f"{prefix}:dlq:count:{projector}"


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
        """Returns once the dead letter is durable; only then may the checkpoint pass it."""
        if self._building is not None:
            projector = building_label(projector, self._building)
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
        await self._redis.incr(dlq_count_key(self._prefix, projector))
