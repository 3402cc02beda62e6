"""A follow and an erasure of the same account applied at once by two lanes (they come
from different families): whichever commits second sees the other's rows, so the erased
account is left in no follow."""

from __future__ import annotations

import asyncio

import asyncpg

from bloghub.adapters.postgres.generations import create_generation
from bloghub.events.social import UserFollowed
from bloghub.events.users import UserErased
from bloghub.ids import new_id_str
from bloghub.projections.postgres_sink import projector_engine
from bloghub.projections.social import SocialProjector
from tests.conftest import isolated
from tests.support import recorded

GENERATION = 2


async def test_an_erasure_waits_for_a_follow_being_applied_and_removes_it(run_id: str) -> None:
    async with isolated(run_id, "socialrace") as s:
        engine = projector_engine(s.sqlalchemy_url, pool_size=2)
        try:
            async with engine.begin() as conn:
                await create_generation(conn, "social", GENERATION, activate=False)
            projector = SocialProjector(engine, generation=GENERATION)
            gone, other = new_id_str(), new_id_str()
            follow = recorded(
                UserFollowed(follower_id=gone, followee_id=other),
                topic="social",
                partition=0,
                offset=0,
            )
            erase = recorded(UserErased(user_id=gone), topic="users", partition=0, offset=0)
            translate = {"schema_translate_map": {None: projector.schema}}

            async def erase_in_another_lane() -> None:
                async with engine.begin() as raw:
                    conn = await raw.execution_options(**translate)
                    await projector.handle(conn, [erase])

            async with engine.begin() as raw:
                conn = await raw.execution_options(**translate)
                await projector.handle(conn, [follow])
                erasing = asyncio.create_task(erase_in_another_lane())
                await asyncio.sleep(0.5)
                assert not erasing.done(), "the erasure waits for the follow's commit"
            await erasing
        finally:
            await engine.dispose()
        db = await asyncpg.connect(s.asyncpg_dsn)
        try:
            left = await db.fetch(f"SELECT * FROM social_g{GENERATION}.follows")
            counts = await db.fetch(f"SELECT * FROM social_g{GENERATION}.follow_counts")
        finally:
            await db.close()
        assert left == []
        assert counts == []
