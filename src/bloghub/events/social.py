"""Events of the social family: follows.

Keyed by the follower, so a follow and an unfollow of the same pair always share a
partition and apply in order.
"""

from __future__ import annotations

from typing import ClassVar

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class FollowEvent(Event):
    FAMILY: ClassVar[Family] = Family.SOCIAL
    AGGREGATE: ClassVar[str] = "follower_id"

    follower_id: str
    followee_id: str


@registry.register
class UserFollowed(FollowEvent):
    TYPE: ClassVar[str] = "user.followed"


@registry.register
class UserUnfollowed(FollowEvent):
    TYPE: ClassVar[str] = "user.unfollowed"
