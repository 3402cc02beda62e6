"""Whether one user follows another: the one question the API asks of the follow
relation outside the social routes (presence is for followers), answered from the social
read model as of the asker's own last follow or unfollow."""

from __future__ import annotations

from starlette.requests import Request

from bloghub.api.consistent import pinned, wait_for_reads
from bloghub.api.http import container
from bloghub.api.social_queries import SocialQueries
from bloghub.api.v1.social import RELATIONS_READS
from bloghub.errors import CatchingUp


async def follows(request: Request, follower_id: str, followee_id: str) -> bool:
    """Asked by the follower: their own last follow or unfollow is applied first (503 to
    retry if that takes longer than the wait bound), so a follow just made counts at once
    and an unfollow just made no longer does."""
    if await wait_for_reads(request, RELATIONS_READS, follower_id):
        raise CatchingUp("your last follow or unfollow is still being applied; try again")
    queries = SocialQueries(container(request).read_engine, pinned(request))
    return await queries.follows(follower_id, followee_id)


async def may_see_presence(request: Request, viewer_id: str, user_id: str) -> bool:
    """A user's presence is theirs and their followers' to see."""
    return viewer_id == user_id or await follows(request, viewer_id, user_id)
