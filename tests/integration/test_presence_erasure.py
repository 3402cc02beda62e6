"""An erased user's presence on the real Redis: ``forget`` deletes their last-seen time
and online entries, and their sockets still open (closed only once their processes hear
that the sessions ended) write neither again, on a refresh or on the way out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.presence import Presence, Status
from bloghub.ids import new_id_str
from bloghub.settings import Settings


@pytest.fixture
async def presence(settings: Settings) -> AsyncIterator[Presence]:
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        yield Presence(redis, prefix=settings.prefix, ttl_s=30)
    finally:
        await redis.aclose()


async def _keys(settings: Settings, user_id: str) -> list[str]:
    redis = make_redis(settings.redis_url.get_secret_value())
    try:
        found = [k async for k in redis.scan_iter(match=f"{settings.prefix}:*{user_id}*")]
    finally:
        await redis.aclose()
    return sorted(k.decode() if isinstance(k, bytes) else k for k in found)


async def test_a_forgotten_user_is_never_seen_again(presence: Presence, settings: Settings) -> None:
    gone, other = new_id_str(), new_id_str()
    assert await presence.join(gone, "p:1", most=3)
    assert await presence.join(other, "p:2", most=3)
    assert (await presence.status(gone)).online

    await presence.forget(gone)
    assert await presence.status(gone) == Status(online=False, last_seen_ms=None)

    # Their socket lives on a moment: refreshed beside another user's, then closed.
    await presence.refresh([(gone, "p:1"), (other, "p:2")])
    await presence.leave(gone, "p:1")
    assert await presence.join(gone, "p:3", most=3)  # let through, recorded nowhere
    assert await presence.status(gone) == Status(online=False, last_seen_ms=None)
    # Nothing of theirs is kept but the mark that keeps them forgotten.
    assert await _keys(settings, gone) == [f"{settings.prefix}:presence-erased:{gone}"]
    # Everyone else's presence carries on.
    found = await presence.status(other)
    assert found.online
    assert found.last_seen_ms is not None
    await presence.leave(other, "p:2")
    left = await presence.status(other)
    assert not left.online
    assert left.last_seen_ms is not None
