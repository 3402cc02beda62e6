"""Query and answer models of the search API."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from bloghub.api.v1.article_schemas import AuthorOut, Interactive, ListingQuery
from bloghub.api.v1.schemas import DIGITS, LINE

MAX_QUERY_CHARS = 200


def _normal(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip())


# The words to look for: plain text, never query syntax. Visible text only (LINE), at
# most 200 characters as sent: past that a query is not a search but a paste.
Words = Annotated[
    str,
    Field(min_length=1, max_length=MAX_QUERY_CHARS, description="words to look for"),
    LINE,
    AfterValidator(_normal),
]


class ArticleSearchQuery(ListingQuery):
    q: Words
    limit: Annotated[int, Field(ge=1, le=50, description="page size, 1-50"), DIGITS] = 20


class UserSearchQuery(BaseModel):
    q: Words
    limit: Annotated[int, Field(ge=1, le=50, description="how many, 1-50"), DIGITS] = 20


class Highlights(BaseModel):
    """Fragments around the words found: HTML-escaped text, the words in <mark> tags."""

    title: str | None = None
    content: list[str] = Field(default_factory=list)


class ArticleHit(Interactive):
    id: str
    author: AuthorOut
    title: str
    tags: list[str]
    published_at: datetime
    comment_cnt: int = 0  # comments under it, replies included (api/article_counts.py)
    highlights: Highlights


class ArticleResults(BaseModel):
    total: int
    articles: list[ArticleHit]
    next_cursor: str | None = None


class UserHit(BaseModel):
    id: str
    nickname: str | None = None
    about_me: str | None = None


class UserResults(BaseModel):
    total: int
    users: list[UserHit]


def author_filter(author: UUID | None) -> str | None:
    return str(author) if author is not None else None
