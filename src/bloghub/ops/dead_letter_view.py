"""The latest dead letters, read from the tail of the dead-letter topic."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bloghub.errors import Unavailable
from bloghub.events.topics import DLQ, topic_for


class DeadLetterView:
    def __init__(self, *, bootstrap: str, prefix: str, partitions: int) -> None:
        self._topic = topic_for(prefix, DLQ)
        self._parts = [TopicPartition(self._topic, p) for p in range(partitions)]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Between two readings the consumer sits at the topic's end, where the broker
            # holds each fetch this long for records that do not come; a reading's seek
            # waits for the fetch in flight to return first (aiokafka has one in flight
            # per broker), so the default 500 ms made every dashboard refresh wait a second.
            fetch_max_wait_ms=20,
        )
        # One reading at a time: each seeks the one consumer, and two dashboards polling
        # at once would move each other's reads.
        self._reading = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        # Nothing is assigned between readings: an assigned consumer fetches at the end
        # of the topic without pause, one request per fetch_max_wait_ms (fifty a second
        # from every API process, and a tenth of its CPU under load).
        await self._consumer.start()
        self._started = True

    async def close(self) -> None:
        self._started = False
        await self._consumer.stop()

    async def latest(self, limit: int = 10) -> list[dict[str, Any]]:
        """The ``limit`` newest dead letters, newest first."""
        if not self._started:  # Kafka not reached since this process began (still tried)
            raise Unavailable("Kafka has not been reachable: the dead letters cannot be read")
        async with self._reading:
            return await self._latest(limit)

    async def _latest(self, limit: int) -> list[dict[str, Any]]:
        ends = await self._consumer.end_offsets(self._parts)
        starts = await self._consumer.beginning_offsets(self._parts)
        wanted = {tp: ends[tp] for tp in self._parts if ends[tp] > starts[tp]}
        letters: list[dict[str, Any]] = []
        if not wanted:
            return letters
        self._consumer.assign(list(wanted))
        try:
            for tp in wanted:
                self._consumer.seek(tp, max(starts[tp], ends[tp] - limit))
            pending = set(wanted)
            for _ in range(20):
                if not pending:
                    break
                batches = await self._consumer.getmany(*pending, timeout_ms=200)
                for tp, records in batches.items():
                    letters += [_letter(r) for r in records if r.offset < wanted[tp]]
                    if records and records[-1].offset >= wanted[tp] - 1:
                        pending.discard(tp)
        finally:
            self._consumer.unsubscribe()
        letters.sort(key=lambda letter: letter["timestamp_ms"], reverse=True)
        return letters[:limit]


def _letter(record: Any) -> dict[str, Any]:
    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
    return {
        "projector": headers.get("projector"),
        "origin": f"{headers.get('origin_topic')}/{headers.get('origin_partition')}"
        f"@{headers.get('origin_offset')}",
        "type": headers.get("type"),
        "event_id": headers.get("event_id"),
        "error": headers.get("error"),
        "timestamp_ms": record.timestamp,
    }
