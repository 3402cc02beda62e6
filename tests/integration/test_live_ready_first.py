"""A live socket's first message is ``ready``, even when a notification for its user comes
while the hub still asks the session store (on the real Redis) whether the session lives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import cast

import orjson
import pytest
from starlette.websockets import WebSocket

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.presence import Presence
from bloghub.adapters.redis.sessions import SessionStore
from bloghub.ids import new_id_str
from bloghub.live.hub import READY, Admission, LiveHub
from bloghub.live.socket import LiveConfig, LiveSocket
from bloghub.settings import Settings


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[LiveHub]:
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        yield LiveHub(
            redis,
            prefix=settings.prefix,
            presence=Presence(redis, prefix=settings.prefix, ttl_s=30),
            sessions=SessionStore(redis, prefix=settings.prefix),
            config=LiveConfig(
                ping_interval_s=20,
                presence_ttl_s=30,
                auth_timeout_s=10,
                connections_per_user=5,
                max_message_bytes=4096,
                queue_max=8,
            ),
        )
    finally:
        await redis.aclose()


async def test_a_notification_during_the_session_check_comes_after_ready(hub: LiveHub) -> None:
    user_id, session_id = new_id_str(), new_id_str()
    ends_at = int(time.time()) + 600
    assert await hub.sessions.open(session_id, user_id, new_id_str(), ends_at)
    sock = LiveSocket(
        cast(WebSocket, None),  # never served: what it would send is its queue
        user_id=user_id,
        session_id=session_id,
        process_id=hub.process_id,
        queue_max=8,
    )
    joining = asyncio.create_task(hub.join(sock))
    # Once the socket is counted in, the hub awaits the session store's answer: a
    # notification for the user arrives on the channel meanwhile.
    while sock not in hub._users.get(user_id, set()):
        assert not joining.done(), joining.result()
        await asyncio.sleep(0)
    assert not joining.done()
    notice = {"user_id": user_id, "id": new_id_str(), "kind": "follower"}
    hub._deliver(orjson.dumps(notice))  # as the notifications channel hands it over
    assert await joining is Admission.JOINED

    sent = [sock._queue.get_nowait() for _ in range(sock._queue.qsize())]
    assert sent[0] == READY
    assert [orjson.loads(m)["type"] for m in sent] == ["ready", "notification"]
    await hub.leave(sock)
