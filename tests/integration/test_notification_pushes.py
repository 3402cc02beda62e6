"""A notification reaches the live channel once, however many generations or instances
push it, and a Redis out of memory (which refuses the mark) does not hold pushes back."""

from __future__ import annotations

import asyncio
import secrets

from redis.asyncio import Redis

from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.ids import new_id_str
from bloghub.projections.notifications import Pushes
from tests.integration.test_notifications import listening
from tests.private_redis import private_redis
from tests.support import wait_until


def view(user_id: str) -> dict[str, object]:
    return {
        "id": new_id_str(),
        "user_id": user_id,
        "kind": "follower",
        "created_at": "2026-12-05T10:00:00+00:00",
        "read": False,
        "actor_id": new_id_str(),
    }


async def heard(redis: Redis, prefix: str, send: list[list[dict[str, object]]]) -> list[int]:
    """What each ``Pushes.send`` of ``send`` said it sent, once every push it sent arrived
    (and a moment more for any that should not have)."""
    got: list[dict[str, object]] = []
    heard = await listening(redis, notifications_channel(prefix), got)
    try:
        pushes = Pushes(redis, prefix=prefix)
        sent = [await pushes.send(views) for views in send]

        async def arrived() -> bool:
            return len(got) >= sum(sent)

        await wait_until(arrived, timeout_s=30)
        await asyncio.sleep(0.3)
        assert len(got) == sum(sent), got
        return sent
    finally:
        heard.cancel()
        await asyncio.gather(heard, return_exceptions=True)


async def test_each_notification_is_pushed_once(redis: Redis) -> None:
    prefix = f"push-{secrets.token_hex(4)}"
    user = new_id_str()
    a, b, c = view(user), view(user), view(user)
    # The old generation and the new one (or two instances) push the same rows.
    assert await heard(redis, prefix, [[a, b], [a, b, c], [c]]) == [2, 1, 0]


async def test_a_redis_out_of_memory_still_pushes() -> None:
    async with private_redis() as server:
        client = server.client()
        try:
            await client.config_set("maxmemory-policy", "noeviction")
            await client.config_set("maxmemory", "1")
            mark_refused = view(new_id_str())
            assert await heard(client, "full", [[mark_refused]]) == [1]
        finally:
            await client.aclose()
