"""Whether one user follows another: the one question the API asks of the follow
relation (presence is for followers). Answered from the notifications read model's copy
of ``user.followed``/``user.unfollowed``; the social read model holds the same relation
and may answer here instead."""

from __future__ import annotations

from sqlalchemy import exists, select
from starlette.requests import Request

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import follows as follows_table
from bloghub.api.consistent import pinned
from bloghub.api.http import container

PROJECTOR = "notifications"


async def follows(request: Request, follower_id: str, followee_id: str) -> bool:
    f = follows_table.c
    stmt = select(exists().where(f.follower_id == follower_id, f.followee_id == followee_id))
    schema = schema_name(PROJECTOR, await pinned(request).generation(PROJECTOR))
    async with translated(), container(request).engine.connect() as raw:
        conn = await raw.execution_options(schema_translate_map={None: schema})
        return bool(await conn.scalar(stmt))


async def may_see_presence(request: Request, viewer_id: str, user_id: str) -> bool:
    """A user's presence is theirs and their followers' to see."""
    return viewer_id == user_id or await follows(request, viewer_id, user_id)
