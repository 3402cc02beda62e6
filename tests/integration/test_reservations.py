"""The write-side index: one holder per key, and a sweeper that frees keys whose event
never arrived (a crash between reserve and append) without touching confirmed ones."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import make_engine
from bloghub.adapters.postgres.reservations import Reservations
from bloghub.commands.sweeper import sweep_forever
from bloghub.errors import Conflict
from bloghub.settings import Settings


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    e = make_engine(settings.sqlalchemy_url, pool_size=2)
    yield e
    await e.dispose()


async def _age(settings: Settings, value: str, seconds: int) -> None:
    conn = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        await conn.execute(
            "UPDATE reservations SET reserved_at = now() - make_interval(secs => $2) "
            "WHERE value = $1",
            value,
            seconds,
        )
    finally:
        await conn.close()


async def test_a_key_has_one_holder(engine: AsyncEngine) -> None:
    index = Reservations(engine)
    key = f"{secrets.token_hex(4)}@example.com"
    await index.reserve("email", key, "owner-1")
    with pytest.raises(Conflict):
        await index.reserve("email", key, "owner-2")
    await index.release("email", key, "owner-2")  # not the holder: nothing happens
    held = await index.get("email", key)
    assert held is not None
    assert held.owner_id == "owner-1"


async def test_sweeper_frees_only_stale_unconfirmed_keys(
    engine: AsyncEngine, settings: Settings
) -> None:
    index = Reservations(engine)
    crashed, confirmed, fresh = (f"{secrets.token_hex(4)}@example.com" for _ in range(3))
    for owner, key in enumerate((crashed, confirmed, fresh)):
        await index.reserve("email", key, f"owner-{owner}")
    await index.confirm("email", confirmed, "owner-1", "cG9z")
    await _age(settings, crashed, 3600)
    await _age(settings, confirmed, 3600)

    stop = asyncio.Event()
    sweeper = asyncio.create_task(sweep_forever(index, older_than_s=600, every_s=0.05, stop=stop))

    async def freed() -> bool:
        return await index.get("email", crashed) is None

    for _ in range(100):
        if await freed():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await sweeper

    assert await index.get("email", crashed) is None
    kept = await index.get("email", confirmed)
    assert kept is not None
    assert (kept.status, kept.position) == ("confirmed", "cG9z")
    assert await index.get("email", fresh) is not None
    await index.reserve("email", crashed, "owner-9")  # the freed key can be taken again


async def test_a_step_below_a_held_newer_one_is_refused_and_older_steps_can_go(
    engine: AsyncEngine, settings: Settings
) -> None:
    index = Reservations(engine)
    series, owner = f"article-{secrets.token_hex(4)}", "author"
    for step in (2, 3, 4):
        key = await index.reserve_step("article_version", series, step, owner)
        await index.confirm("article_version", key, owner, "pos")
    assert key == f"{series}:0000000004"
    with pytest.raises(Conflict):
        await index.reserve_step("article_version", series, 4, owner)  # taken

    assert await index.release_steps_before("article_version", series, 4) == 2
    assert await index.get("article_version", f"{series}:0000000002") is None
    # Step 3 is free again, but a change decided on version 2 must still lose: 4 is held.
    with pytest.raises(Conflict):
        await index.reserve_step("article_version", series, 3, owner)
    # Another series is not touched by this one's steps, and the next step is free.
    other = await index.reserve_step("article_version", f"{series}x", 3, owner)
    assert other == f"{series}x:0000000003"
    assert await index.reserve_step("article_version", series, 5, owner) == f"{series}:0000000005"
