"""Commands on a user's own notifications."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bloghub.commands.context import Caller, CommandDeps
from bloghub.events.notifications import NotificationsRead
from bloghub.events.position import Position


async def mark_read(
    deps: CommandDeps,
    caller: Caller,
    *,
    user_id: str,
    ids: Sequence[str] = (),
    up_to: tuple[datetime, str] | None = None,
) -> Position:
    """Mark ``ids`` read, and with ``up_to`` (a notification's created_at and id) every
    notification at or before it."""
    at, last = up_to if up_to is not None else (None, None)
    return await deps.record(
        Caller(user_id, caller.request_id),
        NotificationsRead(user_id=user_id, ids=list(ids), up_to_at=at, up_to_id=last),
    )
