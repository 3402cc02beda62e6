"""What RealWorld answers look like: users, profiles, articles and comments, with
timestamps in ISO 8601, milliseconds and ``Z``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bloghub.api.article_queries import abstract
from bloghub.api.queries import UserRow
from bloghub.commands.users import ERASED_NAME

DELETED_USER = ERASED_NAME  # an erased author's articles stay, under this name


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def user_view(row: UserRow, token: str) -> dict[str, Any]:
    # The spec's user has an email and a username, both strings. An account made by SMS or
    # WeChat has no email ("", as clients show an empty field) and may have no nickname
    # yet: its id stands in, as on its profile (``person``).
    return {
        "user": {
            "email": row.email or "",
            "token": token,
            "username": row.nickname or row.id,
            "bio": row.about_me,
            "image": row.image,
        }
    }


@dataclass(frozen=True, slots=True)
class Person:
    """A profile as RealWorld shows it, before ``following``."""

    id: str
    username: str
    bio: str | None
    image: str | None

    def view(self, following: bool) -> dict[str, Any]:
        return {
            "username": self.username,
            "bio": self.bio,
            "image": self.image,
            "following": following,
        }


def person(row: UserRow | None, user_id: str) -> Person:
    if row is None or row.erased:
        return Person(user_id, DELETED_USER, None, None)
    # An account made by SMS or WeChat may have no nickname yet: its id stands in.
    return Person(row.id, row.nickname or row.id, row.about_me, row.image)


@dataclass(frozen=True, slots=True)
class Listed:
    """A published article with what readers see of it besides its author."""

    id: str
    author_id: str
    slug: str
    title: str
    description: str
    body: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime


def listed(row: Any) -> Listed:
    """``row``: ``queries.ARTICLE_COLUMNS`` of a published article."""
    return Listed(
        id=str(row.id),
        author_id=str(row.author_id),
        slug=row.slug or str(row.id),
        title=row.published_title,
        description=row.published_description or abstract(row.published_content),
        body=row.published_content,
        tags=list(row.published_tags or []),
        created_at=row.published_at,
        updated_at=row.updated_at,
    )


def article_view(
    a: Listed, author: dict[str, Any], favorited: bool, count: int, *, body: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "slug": a.slug,
        "title": a.title,
        "description": a.description,
        "tagList": a.tags,
        "createdAt": timestamp(a.created_at),
        "updatedAt": timestamp(a.updated_at),
        "favorited": favorited,
        "favoritesCount": count,
        "author": author,
    }
    if body:
        out["body"] = a.body
    return out
