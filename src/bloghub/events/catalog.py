"""Importing this module registers every event type of every family."""

from __future__ import annotations

from bloghub.events import articles, comments, interactions, notifications, social, users
from bloghub.events.base import registry

__all__ = [
    "articles",
    "comments",
    "interactions",
    "notifications",
    "registry",
    "social",
    "users",
]
