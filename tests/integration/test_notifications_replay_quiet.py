"""A rebuild of the notifications read model tells no one: the replay tool, as an operator
runs it (every projector built by ``from_stores`` from stores with ``live`` off), pushes
nothing to the live sockets' channel, while the live projector pushes each new
notification. Every projector built from quiet stores keeps its side effects off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from redis.asyncio import Redis

from bloghub.adapters.redis import make_redis
from bloghub.adapters.redis.live_channels import notifications_channel
from bloghub.events.log import EventLog
from bloghub.events.social import UserFollowed
from bloghub.ids import new_id_str
from bloghub.ops.replay import ReplayPlan, building_stores, close_stores, replay
from bloghub.projections.catalog import POSTGRES_PROJECTORS
from bloghub.projections.interactions import InteractionsProjector
from bloghub.projections.notifications import NotificationsProjector
from bloghub.settings import Settings
from tests.conftest import isolated, pg, projecting
from tests.support import append_events, wait_until

FOLLOWERS = 5


@contextlib.asynccontextmanager
async def listening(settings: Settings) -> AsyncIterator[list[dict[str, object]]]:
    """Every message on the live notifications channel while the block runs."""
    heard: list[dict[str, object]] = []
    redis = make_redis(settings.redis_url.get_secret_value())
    subscribed = asyncio.Event()

    async def listen(client: Redis) -> None:
        async with client.pubsub() as sub:
            await sub.subscribe(notifications_channel(settings.prefix))
            subscribed.set()
            while True:
                message = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    heard.append(orjson.loads(message["data"]))

    task = asyncio.create_task(listen(redis))
    try:
        await asyncio.wait_for(subscribed.wait(), timeout=10)
        yield heard
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await redis.aclose()


async def _ids(settings: Settings, generation: int) -> list[str]:
    async with pg(settings) as conn:
        rows = await conn.fetch(f"SELECT id::text FROM notifications_g{generation}.notifications")
    return sorted(r[0] for r in rows)


async def test_a_replay_pushes_nothing_while_the_live_projector_pushes(run_id: str) -> None:
    async with isolated(run_id, "nquiet") as s, listening(s) as heard:
        followee = new_id_str()
        log = EventLog.from_settings(s, timeout_s=10)
        await log.start()
        try:
            follows = [
                UserFollowed(follower_id=new_id_str(), followee_id=followee)
                for _ in range(FOLLOWERS)
            ]
            await append_events(log, follows)
        finally:
            await log.close()
        async with projecting(s, "notifications"):

            async def all_pushed() -> bool:
                return len(heard) >= FOLLOWERS

            await wait_until(all_pushed, timeout_s=60)
        assert sorted(str(p["id"]) for p in heard) == await _ids(s, 1)

        pushed_live = len(heard)
        built = await asyncio.wait_for(
            replay(
                s,
                ReplayPlan(["notifications"], swap=False, every_s=0.2),
                show=lambda _: None,
                stop=asyncio.Event(),
            ),
            timeout=120,
        )
        await asyncio.sleep(1.0)  # a push after a commit of the build would be here by now
        assert [(p.generation, p.state) for p in built] == [(2, "built")]
        assert await _ids(s, 2) == await _ids(s, 1)
        assert heard[pushed_live:] == [], "the rebuild pushed old notifications to sockets"


async def test_every_projector_built_from_quiet_stores_keeps_side_effects_off(
    settings: Settings,
) -> None:
    """What the replay tool and ``bloghub migrate`` build from: the live flag reaches every
    PostgreSQL projector, whatever its own ``from_stores`` does."""
    stores = building_stores(settings, pool_size=1)
    try:
        for name, cls in POSTGRES_PROJECTORS.items():
            projector = cls.from_stores(stores, generation=1)
            assert projector.live is False, name
        notifications = NotificationsProjector.from_stores(stores, generation=1)
        assert notifications.redis is None
        interactions = InteractionsProjector.from_stores(stores, generation=1)
        assert interactions.counters is None
    finally:
        await close_stores(stores)
