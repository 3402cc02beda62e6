"""The session store on the real Redis: one current refresh token per session, any other
is reuse and ends the session; ending is at once and for good."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.sessions import Rotation, SessionStore
from bloghub.ids import new_id_str
from bloghub.settings import Settings


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SessionStore]:
    redis = make_redis(settings.redis_url.get_secret_value())
    yield SessionStore(redis, prefix=settings.prefix)
    await redis.aclose()


def _day_from_now() -> int:
    return int(time.time()) + 86400


async def test_only_the_current_refresh_token_rotates(store: SessionStore) -> None:
    sid, user = new_id_str(), new_id_str()
    await store.open(sid, user, "r1", _day_from_now())
    assert await store.rotate(sid, user, "r1", "r2") is Rotation.ROTATED
    assert await store.rotate(sid, user, "r2", "r3") is Rotation.ROTATED
    assert await store.is_live(sid, user)
    assert await store.rotate(sid, user, "r1", "r9") is Rotation.REUSED
    assert not await store.is_live(sid, user)
    assert await store.rotate(sid, user, "r3", "r4") is Rotation.ENDED


async def test_a_session_answers_only_for_its_owner(store: SessionStore) -> None:
    sid, user = new_id_str(), new_id_str()
    await store.open(sid, user, "r1", _day_from_now())
    assert not await store.is_live(sid, new_id_str())
    assert await store.rotate(sid, new_id_str(), "r1", "r2") is Rotation.ENDED
    assert await store.is_live(sid, user), "a stranger's attempt does not end the session"


async def test_a_rotation_whose_pair_was_never_sent_can_be_undone(store: SessionStore) -> None:
    sid, user = new_id_str(), new_id_str()
    await store.open(sid, user, "r1", _day_from_now())
    assert await store.rotate(sid, user, "r1", "r2") is Rotation.ROTATED
    await store.restore(sid, "r1", "r2")
    assert await store.rotate(sid, user, "r1", "r3") is Rotation.ROTATED


async def test_ending_all_sessions_can_keep_one(store: SessionStore) -> None:
    user = new_id_str()
    kept, *others = [new_id_str() for _ in range(3)]
    for sid in (kept, *others):
        await store.open(sid, user, f"r-{sid}", _day_from_now())
    await store.end_all(user, keep=kept)
    assert await store.is_live(kept, user)
    assert not any([await store.is_live(sid, user) for sid in others])
    await store.end(kept, user)
    assert not await store.is_live(kept, user)


async def test_a_session_past_its_absolute_end_is_gone(store: SessionStore) -> None:
    sid, user = new_id_str(), new_id_str()
    await store.open(sid, user, "r1", int(time.time()) - 1)
    assert not await store.is_live(sid, user)


async def test_a_login_that_checked_the_password_before_a_seal_opens_nothing(
    store: SessionStore,
) -> None:
    """A password login reads the credentials epoch before its (slow) hash check; a change
    sealed meanwhile refuses the session it would open, and ends the one it opened just
    before, but the change's own."""
    user, mine, racing = new_id_str(), new_id_str(), new_id_str()
    await store.open(mine, user, "r-mine", _day_from_now())
    epoch = await store.credentials_epoch(user)
    assert epoch == "0"
    assert await store.open(racing, user, "r-racing", _day_from_now(), epoch=epoch)
    await store.seal(user, keep=mine)
    assert not await store.is_live(racing, user)
    assert await store.is_live(mine, user)
    late = new_id_str()
    assert not await store.open(late, user, "r-late", _day_from_now(), epoch=epoch)
    assert not await store.is_live(late, user)
    # Read after the seal, the epoch lets a login with the new password in.
    assert await store.open(
        late, user, "r-late", _day_from_now(), epoch=await store.credentials_epoch(user)
    )
    assert await store.is_live(late, user)
