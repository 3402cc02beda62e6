"""Notifications removed with their comment or article are kept as where they sat in
their user's list (``removed_notifications``): a client whose page still shows one may
mark read "up to" it, and the older ones it covers are marked, as they would have been
before the removal."""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.dialects.postgresql import Insert, insert

from bloghub.adapters.postgres.tables import notifications, removed_notifications

_n = notifications.c


def removing(where: ColumnElement[bool]) -> Insert:
    """One statement: the notifications ``where`` holds deleted, and each kept as removed."""
    gone = delete(notifications).where(where).returning(_n.id, _n.user_id, _n.created_at)
    taken = gone.cte("gone")
    return (
        insert(removed_notifications)
        .from_select(
            ["id", "user_id", "created_at"], select(taken.c.id, taken.c.user_id, taken.c.created_at)
        )
        .on_conflict_do_nothing()
    )
