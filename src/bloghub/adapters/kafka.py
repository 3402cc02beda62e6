"""Kafka admin: creates the topic catalog at start-up (idempotent) and waits until the
broker serves it; drops the catalog of a throw-away prefix (tests, benchmarks); tells
where the log ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from bloghub.events.topics import TOPIC_CONFIG, catalog

log = structlog.get_logger(__name__)


async def ensure_topics(
    bootstrap: str, prefix: str, *, partitions: int, replication: int
) -> list[str]:
    """Create every catalog topic that does not exist yet, then wait until the broker
    serves every one of them; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        created = await _create_missing(admin, prefix, partitions, replication)
        await _until_served(admin, catalog(prefix))
        return created
    finally:
        await admin.close()


def min_insync_replicas(replication: int) -> int:
    """A majority of the replicas: with ``acks=all`` a write is acknowledged only once that
    many hold it, so losing any minority of brokers loses no acknowledged write (2 of 3)."""
    return replication // 2 + 1


def topic_config(replication: int) -> dict[str, str]:
    return {**TOPIC_CONFIG, "min.insync.replicas": str(min_insync_replicas(replication))}


def new_topics(topics: Sequence[str], *, partitions: int, replication: int) -> list[NewTopic]:
    return [
        NewTopic(
            t,
            num_partitions=partitions,
            replication_factor=replication,
            topic_configs=topic_config(replication),
        )
        for t in topics
    ]


async def _create_missing(
    admin: AIOKafkaAdminClient, prefix: str, partitions: int, replication: int
) -> list[str]:
    existing = set(await admin.list_topics())
    wanted = [t for t in catalog(prefix) if t not in existing]
    if wanted:
        new = new_topics(wanted, partitions=partitions, replication=replication)
        response = await admin.create_topics(new)
        for topic, code, *_ in response.topic_errors:
            # Another process may create the same topic at the same moment.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"could not create topic {topic}: error code {code}")
        log.info("topics.created", topics=wanted, partitions=partitions)
    return wanted


async def _until_served(
    admin: AIOKafkaAdminClient, topics: Sequence[str], timeout_s: float = 60.0
) -> None:
    """A topic the controller created may not be in a just-started broker's metadata yet;
    an append to it then fails as an unknown topic. Wait until every partition has a
    leader."""
    deadline = time.monotonic() + timeout_s
    while pending := _not_served(await admin.describe_topics(list(topics))):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics not served after {timeout_s:.0f}s: {', '.join(pending)}")
        await asyncio.sleep(0.1)


def _not_served(described: list[dict[str, Any]]) -> list[str]:
    return [
        t["topic"]
        for t in described
        if t["error_code"] != 0
        or not t["partitions"]
        or any(p["error_code"] != 0 or p["leader"] < 0 for p in t["partitions"])
    ]


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete the catalog topics of ``prefix``; the ones deleted. Event topics keep
    everything forever, so a test run's or a benchmark's must not outlive it: thousands of
    stray partitions cost the broker memory."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [t for t in catalog(prefix) if t in existing]
        if mine:
            await admin.delete_topics(mine)
        return mine
    finally:
        await admin.close()


# How long a topic's partitions, as the broker gave them when a position named one it
# lacked, are taken as they were: positions from before the topics were made again come
# in numbers, and each question holds up the others.
PARTITIONS_KEPT_S = 10.0

T = TypeVar("T")


class LogEnds:
    """Where each partition of the log ends, as last asked of the broker. Ends only grow,
    so an end already known to lie past an offset settles the question without a request;
    only an offset at or past its partition's known end asks again (one question at a time,
    bounded).
    The group-less consumer (and, for a partition a topic may lack, an admin client) is
    started at first need and kept."""

    def __init__(
        self,
        bootstrap: str,
        *,
        client_id: str,
        timeout_s: float = 1.0,
        partitions_kept_s: float = PARTITIONS_KEPT_S,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._partitions_kept_s = partitions_kept_s
        self._consumer: asyncio.Future[AIOKafkaConsumer] | None = None
        self._admin: asyncio.Future[AIOKafkaAdminClient] | None = None
        self._ends: dict[tuple[str, int], int] = {}
        # Topics a position named a partition of that the consumer did not know: how many
        # partitions the broker said they have, and until when (monotonic) that holds.
        self._partitions: dict[str, tuple[int, float]] = {}
        self._lock = asyncio.Lock()

    async def beyond(
        self, offsets: Mapping[tuple[str, int], int], *, within_s: float | None = None
    ) -> bool | None:
        """Whether some offset holds no record yet (at or past its partition's end, or in a
        partition its topic lacks); None when the broker did not answer in time (its own
        bound, or ``within_s`` if that is shorter)."""
        if not self._past(offsets):
            return False
        if self._lacking(offsets):
            return True
        bound = self._timeout_s if within_s is None else min(self._timeout_s, within_s)
        try:
            # The wait for another request's question is in the bound too.
            async with asyncio.timeout(bound), self._lock:
                if not self._past(offsets):  # another request asked meanwhile
                    return False
                if self._lacking(offsets):
                    return True
                ends = await self._ask(list(offsets))
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("log_ends.unknown", error=repr(exc))
            return None
        self._ends.update(ends)
        return self._past(offsets)

    async def now(
        self, topic: str, partitions: int, only: int | None = None
    ) -> dict[tuple[str, int], int] | None:
        """Where each of the topic's partitions (or partition ``only``) ends now, as the
        broker says (asked every time); None when it did not answer in time."""
        asked = [(topic, p) for p in range(partitions) if only is None or p == only]
        try:
            ends = await asyncio.wait_for(self._ask(asked), self._timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("log_ends.unknown", error=repr(exc))
            return None
        async with self._lock:
            self._ends.update(ends)
        return ends

    def _past(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        return any(self._ends.get(tp, 0) <= offset for tp, offset in offsets.items())

    def _known(self, topic: str) -> bool:
        return self._partitions.get(topic, (0, 0.0))[1] > time.monotonic()

    def _lacking(self, partitions: Iterable[tuple[str, int]]) -> bool:
        """Whether a partition is past its topic's, as the broker last gave them."""
        now = time.monotonic()
        for topic, partition in partitions:
            has, until = self._partitions.get(topic, (0, 0.0))
            if until > now and partition >= has:
                return True
        return False

    async def _ask(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        consumer = await asyncio.shield(self._started())
        ends: dict[tuple[str, int], int] = {}
        for topic in {topic for topic, _ in partitions}:
            if consumer.partitions_for_topic(topic) is None:
                # Its partitions are learned with the end of its first, which every topic has.
                ends.update(await self._ends_of(consumer, [(topic, 0)]))
        # The broker never answers for the end of a partition its topic lacks (a position
        # from before the topics were made again with fewer), and the consumer's metadata
        # may be minutes old either way: what partitions each topic has is asked of the
        # broker (one metadata round trip), kept a while. Shielded: learned once, even for
        # a request that stops waiting.
        unseen = {topic for topic, _ in partitions if not self._known(topic)}
        learned = await asyncio.shield(self._learn(unseen)) if unseen else {}
        asked: list[tuple[str, int]] = []
        for tp in partitions:
            if tp in ends:
                continue
            if tp[1] >= learned.get(tp[0], tp[1] + 1) or self._lacking([tp]):
                ends[tp] = 0  # nothing was written there
            else:
                asked.append(tp)
        if asked:
            ends.update(await self._ends_of(consumer, asked))
        return ends

    async def _learn(self, topics: set[str]) -> dict[str, int]:
        """How many partitions each of ``topics`` has, as the broker says now (kept)."""
        admin = await asyncio.shield(self._admin_started())
        described = await admin.describe_topics(sorted(topics))
        until = time.monotonic() + self._partitions_kept_s
        learned: dict[str, int] = {}
        for topic in described:
            has = max((p["partition"] for p in topic["partitions"]), default=-1) + 1
            name = str(topic["topic"])
            learned[name] = has
            self._partitions[name] = (has, until)
            # Made again with fewer: what was known of those it lost no longer holds.
            for tp in [tp for tp in self._ends if tp[0] == name and tp[1] >= has]:
                del self._ends[tp]
        return learned

    @staticmethod
    async def _ends_of(
        consumer: AIOKafkaConsumer, partitions: list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        ends = await consumer.end_offsets([TopicPartition(*tp) for tp in partitions])
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    # Each client is started once, outside any request's bound (shielded): a slow first
    # connection is finished by a later request instead of being cut short by each of them.

    def _started(self) -> asyncio.Future[AIOKafkaConsumer]:
        self._consumer = _kept(self._consumer, self._start)
        return self._consumer

    def _admin_started(self) -> asyncio.Future[AIOKafkaAdminClient]:
        self._admin = _kept(self._admin, self._start_admin)
        return self._admin

    async def _start(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _start_admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
        try:
            await admin.start()
        except BaseException:
            await admin.close()
            raise
        return admin

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        admin, self._admin = self._admin, None
        if consumer is not None:
            await _stopped(consumer, lambda c: c.stop())
        if admin is not None:
            await _stopped(admin, lambda a: a.close())


def _kept(held: asyncio.Future[T] | None, start: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
    """``held``, or ``start`` begun again if there is none or it failed."""
    if held is None or (held.done() and (held.cancelled() or held.exception() is not None)):
        return asyncio.ensure_future(start())
    return held


async def _stopped(starting: asyncio.Future[T], stop: Callable[[T], Awaitable[None]]) -> None:
    if not starting.done():
        starting.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await stop(await starting)
