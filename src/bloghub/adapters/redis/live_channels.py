"""The pub/sub channels live sockets are fed from, named in one place: the notifications
projector and the session store publish on them, every API process listens.

Pub/sub delivers to whoever listens at that moment and keeps nothing: a process that is
not subscribed misses messages, which is why a client reads what it missed with
``GET /v1/notifications`` and a socket also re-checks its session on every ping.
"""

from __future__ import annotations


def notifications_channel(prefix: str) -> str:
    """Each message: one new notification as JSON (``readmodels.notification_view``)."""
    return f"{prefix}:live:notifications"


def sessions_ended_channel(prefix: str) -> str:
    """Each message: the id of a user some of whose sessions just ended."""
    return f"{prefix}:live:sessions-ended"
