"""Where the log ends, as the API asks it of the broker to refuse positions past it."""

from __future__ import annotations

from bloghub.adapters.kafka import LogEnds
from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.settings import Settings


async def test_an_offset_is_beyond_the_log_until_a_record_is_there(
    settings: Settings, event_log: EventLog
) -> None:
    event = UserRegistered(user_id=new_id_str(), email="ends@example.com", password_hash="h")
    written = await event_log.append([envelop(event, actor_id=None, request_id=None)])
    ((topic, partition, offset),) = list(written)
    ends = LogEnds(settings.kafka_bootstrap, client_id="log-ends-test")
    try:
        assert await ends.beyond({(topic, partition): offset}) is False  # written: within
        assert await ends.beyond({(topic, partition): offset + 10**6}) is True
    finally:
        await ends.close()


async def test_an_unreachable_broker_leaves_the_question_open() -> None:
    ends = LogEnds("127.0.0.1:9", client_id="log-ends-test", timeout_s=0.5)
    try:
        assert await ends.beyond({("nowhere.users", 0): 5}) is None  # the read just waits
    finally:
        await ends.close()
