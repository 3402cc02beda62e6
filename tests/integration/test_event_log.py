"""The event log on real Kafka: a producer whose sequence numbers the broker no longer
accepts is replaced, so one refused write does not turn into every write refused."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition

from bloghub.errors import Unavailable
from bloghub.events.base import Envelope, envelop
from bloghub.events.log import EventLog
from bloghub.events.topics import Family, topic_for
from bloghub.events.users import ProfileUpdated
from bloghub.ids import new_id_str
from bloghub.settings import Settings
from tests.conftest import read_topic


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
