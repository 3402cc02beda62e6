"""Events of the users family."""

from __future__ import annotations

from typing import ClassVar

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class UserEvent(Event):
    FAMILY: ClassVar[Family] = Family.USERS
    AGGREGATE: ClassVar[str] = "user_id"

    user_id: str


@registry.register
class UserRegistered(UserEvent):
    TYPE: ClassVar[str] = "user.registered"

    email: str
    password_hash: str
