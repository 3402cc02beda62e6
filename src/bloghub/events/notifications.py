"""Events of a user's notifications: marking them read.

In the users family (keyed by the user), since the reader's own account orders them; the
notifications projector reads them beside what it notifies of.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from bloghub.events.base import registry
from bloghub.events.users import UserEvent


@registry.register
class NotificationsRead(UserEvent):
    """``ids`` are read, and with ``up_to_at``/``up_to_id`` every notification at or
    before that (created_at, id) too."""

    TYPE: ClassVar[str] = "notifications.read"

    ids: list[str] = Field(default_factory=list)
    up_to_at: datetime | None = None
    up_to_id: str | None = None
