"""Whether one user follows another: the one question the API asks of the follow
relation outside the social routes (presence is for followers), answered from the social
read model."""

from __future__ import annotations

from starlette.requests import Request

from bloghub.api.consistent import pinned
from bloghub.api.http import container
from bloghub.api.social_queries import SocialQueries


async def follows(request: Request, follower_id: str, followee_id: str) -> bool:
    queries = SocialQueries(container(request).engine, pinned(request))
    return await queries.follows(follower_id, followee_id)


async def may_see_presence(request: Request, viewer_id: str, user_id: str) -> bool:
    """A user's presence is theirs and their followers' to see."""
    return viewer_id == user_id or await follows(request, viewer_id, user_id)
