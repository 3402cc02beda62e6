"""The event log on real Kafka: a producer whose sequence numbers the broker no longer
accepts is replaced, so one refused write does not turn into every write refused; and a
write the producer cannot deliver in time ends, unconfirmed, with the producer retired; and
a closed log starts no producer that nothing would stop; and an append cancelled after it
handed a record over still tells what hangs on the write how the record fared."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition

from bloghub.adapters.kafka import ensure_topics
from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.adapters.postgres.user_keys import UserKeys
from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.presence import Presence
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.auth.passwords import PasswordHasher
from bloghub.auth.sealing import master_key
from bloghub.bootstrap import token_service
from bloghub.commands.context import Caller, CommandDeps
from bloghub.errors import Unavailable
from bloghub.events.base import Envelope, envelop
from bloghub.events.log import EventLog, Indeterminate, Undelivered
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import PhoneBound, ProfileUpdated
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.conftest import read_topic
from tests.private_kafka import private_kafka
from tests.support import wait_until


def renamed(user_id: str, nickname: str) -> Envelope:
    event = ProfileUpdated(user_id=user_id, changed=["nickname"], nickname=nickname)
    return envelop(event, actor_id=user_id, request_id=new_id_str())


async def test_a_producer_the_broker_no_longer_accepts_is_replaced(settings: Settings) -> None:
    log = EventLog.from_settings(settings)
    await log.start()
    user_id = new_id_str()
    try:
        first = await log.append([renamed(user_id, "one")])
        ((topic, partition),) = first.offsets
        # Make the producer and the broker disagree on the partition's next sequence number,
        # as after a broker restart that lost the tail of a partition.
        producer: Any = log._producer
        producer._txn_manager.increment_sequence_number(TopicPartition(topic, partition), 5)

        with pytest.raises(Unavailable) as refused:
            await log.append([renamed(user_id, "lost")])
        assert "nothing was recorded" in str(refused.value)
        third = await log.append([renamed(user_id, "three")])  # a fresh producer took over
        assert log._producer is not producer
        assert third.offsets[(topic, partition)] > first.offsets[(topic, partition)]
    finally:
        await log.close()

    users = topic_for(settings.prefix, Family.USERS)
    mine = [r.value for r in await read_topic(settings, users) if user_id.encode() in r.value]
    assert [b"one" in v for v in mine] == [True, False]
    assert [b"three" in v for v in mine] == [False, True]


async def test_a_write_the_producer_cannot_deliver_in_time_is_unconfirmed_and_keeps_its_key(
    settings: Settings,
) -> None:
    async with private_kafka() as kafka:
        prefix = f"{settings.prefix}-d{secrets.token_hex(2)}"
        await ensure_topics(kafka.bootstrap, prefix, partitions=1, replication=1)
        short = {"append_timeout_s": 1.0, "delivery_timeout_s": 3.0, "reservation_ttl_s": 20}
        log = EventLog.from_settings(
            settings.model_copy(
                update={"kafka_bootstrap": kafka.bootstrap, "prefix": prefix, **short}
            )
        )
        engine = make_engine(settings.sqlalchemy_url, pool_size=1)
        index = Reservations(engine)
        hasher = PasswordHasher("argon2")
        redis = make_redis(settings.redis_url.get_secret_value())
        deps = CommandDeps(
            event_log=log,
            reservations=index,
            hasher=hasher,
            tokens=token_service(settings),
            sessions=SessionStore(redis, prefix=settings.prefix),
            presence=Presence(redis, prefix=settings.prefix, ttl_s=settings.live_presence_ttl_s),
            keys=UserKeys(engine, master_key(settings)),
        )
        await log.start()
        user_id, phone = new_id_str(), f"+861{secrets.randbelow(10**10):010d}"
        try:
            await log.append([renamed(user_id, "one")])
            producer: Any = log._producer
            await index.reserve("phone", phone, user_id)
            # The test's own broker stops answering: the record is handed over and never
            # confirmed. The producer would retry it for as long as it lives.
            with kafka.frozen():
                with pytest.raises(Indeterminate) as unsure:
                    await deps.record_holding(
                        Caller(user_id, None),
                        ("phone", phone, user_id),
                        PhoneBound(user_id=user_id, phone=phone, previous_phone=None),
                    )
                with pytest.raises(Undelivered):
                    await asyncio.wait_for(unsure.value.outcome, timeout=30)
                # Past the delivery bound the producer is retired, so it sends nothing more.
                assert log._producer is not producer
                await wait_until(_stopped(producer), timeout_s=30)
                # Whether the record landed is unknown: the key stays with its owner until
                # the sweeper, never freed for someone else while the event may hold it.
                await asyncio.sleep(0.5)
                held = await index.get("phone", phone)
                assert held is not None
                assert (held.owner_id, held.status) == (user_id, "pending")
            # A fresh producer takes over once the broker answers again (its first appends
            # may still be slow while the broker catches up).
            for _ in range(20):
                try:
                    later = await log.append([renamed(user_id, "three")])
                    break
                except Unavailable:
                    await asyncio.sleep(0.5)
            assert later
            assert log._producer is not None
            assert log._producer is not producer
        finally:
            await log.close()
            await engine.dispose()
            await redis.aclose()


async def test_a_closed_log_refuses_appends_and_leaves_no_producer_running(
    settings: Settings,
) -> None:
    log = EventLog.from_settings(settings)
    # Closed while its start is under way: the producer that start makes is stopped too.
    starting = asyncio.create_task(log.start())
    await asyncio.sleep(0)
    await log.close()
    await starting
    assert log._producer is None
    with pytest.raises(Unavailable):
        await log.append([renamed(new_id_str(), "late")])
    assert not await log.ping()
    assert log._producer is None


def _stopped(producer: Any) -> Callable[[], Awaitable[bool]]:
    async def stopped() -> bool:
        return bool(producer._closed and producer._sender.sender_task.done())

    return stopped


class _SecondSendStalls(EventLog):
    """A log whose producer takes the first record and then waits (a full buffer, a leader
    being looked up) on the second, until the append is cancelled."""

    def __init__(self, settings: Settings) -> None:
        base = EventLog.from_settings(settings)
        self.__dict__.update(base.__dict__)
        self.sends = 0
        self.stalled = asyncio.Event()

    async def _send(self, producer: Any, env: Envelope) -> asyncio.Future[Any]:
        self.sends += 1
        if self.sends == 2:
            self.stalled.set()
            await asyncio.Event().wait()  # until cancelled
        return await super()._send(producer, env)


async def test_an_append_cancelled_between_records_still_reports_the_first(
    settings: Settings,
) -> None:
    log = _SecondSendStalls(settings)
    await log.start()
    user_id = new_id_str()
    outcomes: list[asyncio.Future[Any]] = []
    try:
        append = asyncio.create_task(
            log.append(
                [renamed(user_id, "one"), renamed(user_id, "two")], handed_over=outcomes.append
            )
        )
        await asyncio.wait_for(log.stalled.wait(), timeout=10)
        append.cancel()
        with pytest.raises(asyncio.CancelledError):
            await append
        # The first record was handed over: what holds a key for it hears how it went.
        assert len(outcomes) == 1
        position = await asyncio.wait_for(outcomes[0], timeout=10)
        assert position.offsets
    finally:
        await log.close()
    users = topic_for(settings.prefix, Family.USERS)
    mine = [r.value for r in await read_topic(settings, users) if user_id.encode() in r.value]
    assert len(mine) == 1
    assert b"one" in mine[0]
