"""A poison event goes to the dead-letter topic with its origin and error; the projector
moves on and keeps applying what follows."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from aiokafka import AIOKafkaProducer

from bloghub.events.base import envelop
from bloghub.events.log import EventLog
from bloghub.events.topics import DLQ, Family, topic_for
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.dead_letters import dlq_count_key
from bloghub.settings import Settings
from tests.conftest import LiveServer, read_topic
from tests.e2e.test_accounts import PASSWORD, signup_body


async def test_poison_events_are_dead_lettered_and_the_projector_goes_on(
    settings: Settings,
    event_log: EventLog,
    live_api: LiveServer,
    client: httpx.AsyncClient,
    unique_email: Callable[[], str],
) -> None:
    users_topic = topic_for(settings.prefix, Family.USERS)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        garbage = await producer.send_and_wait(users_topic, b"\xff not an event", key=b"x")
    finally:
        await producer.stop()

    # Valid on the wire, but PostgreSQL text cannot hold the NUL in its email: applying it
    # fails every time, and for this event alone.
    clash = UserRegistered(user_id=new_id_str(), email="nul\x00@example.com", password_hash="x")
    position = await event_log.append([envelop(clash, actor_id=None, request_id=None)])

    after = unique_email()
    created = await client.post("/v1/users", json=signup_body(after))
    assert created.status_code == 201
    login = await client.post("/v1/auth/login", json={"email": after, "password": PASSWORD})
    assert login.status_code == 200
    # A read that names the clash's position is answered fresh only once the projector has
    # moved past it: the poison event did not stall its partition.
    me = await client.get(
        "/v1/users/me",
        headers={
            "authorization": f"Bearer {login.json()['access_token']}",
            "bloghub-after": live_api.container.positions.seal(position),
        },
    )
    assert me.status_code == 200
    assert "bloghub-stale" not in me.headers, "the projector went on past both poison events"

    dead = await read_topic(settings, topic_for(settings.prefix, DLQ))
    # Keyed by partition too: both poison events are often the first of their partitions.
    origins = {
        (
            dict(r.headers)["origin_topic"].decode(),
            int(dict(r.headers)["origin_partition"]),
            int(dict(r.headers)["origin_offset"]),
        ): r
        for r in dead
    }
    assert (users_topic, garbage.partition, garbage.offset) in origins
    (((_, clash_partition), clash_offset),) = position.offsets.items()
    clash_letter = origins[(users_topic, clash_partition, clash_offset)]
    headers = dict(clash_letter.headers)
    assert b"0x00" in headers["error"]
    assert headers["type"] == b"user.registered"
    assert headers["projector"] == b"users"
    container_redis = live_api.container.redis
    count = await container_redis.get(dlq_count_key(settings.prefix, "users"))
    assert count is not None
    assert int(count) >= 2
