"""Input and output models of the articles API."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from bloghub.api.v1.schemas import Input

MAX_CONTENT_BYTES = 100 * 1024


def _title(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise ValueError("must not be blank")
    if len(value) > 128:
        raise ValueError("at most 128 characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _content(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_CONTENT_BYTES:
        raise ValueError("at most 100 KB")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def normal_tag(raw: str) -> str:
    """A tag as stored: trimmed, NFC, 1-32 characters, no control or separator characters
    (a space inside is allowed). ``ValueError`` says what is wrong."""
    tag = unicodedata.normalize("NFC", raw.strip())
    if not tag:
        raise ValueError("a tag must not be blank")
    if len(tag) > 32:
        raise ValueError("a tag has at most 32 characters")
    if any(unicodedata.category(ch)[0] in ("C", "Z") and ch != " " for ch in tag):
        raise ValueError("a tag must not contain control or separator characters")
    return tag


def _tags(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in values:
        seen.setdefault(normal_tag(raw), None)
    if len(seen) > 5:
        raise ValueError("at most 5 tags")
    return list(seen)


Title = Annotated[str, Field(max_length=512), AfterValidator(_title)]
Content = Annotated[str, Field(max_length=MAX_CONTENT_BYTES), AfterValidator(_content)]
Tags = Annotated[
    list[Annotated[str, Field(max_length=64)]], Field(max_length=20), AfterValidator(_tags)
]


class ArticleIn(Input):
    title: Title
    content: Content = ""
    tags: Tags = Field(default_factory=list)


class ArticleEdit(ArticleIn):
    version: Annotated[int, Field(ge=1)] | None = None  # the draft version this edit is based on


class AuthorOut(BaseModel):
    id: str
    nickname: str | None = None
    deleted: bool = False  # the author erased their account: the article stays, unnamed


class DraftOut(BaseModel):
    id: str
    author_id: str
    version: int
    status: str
    title: str
    content: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    published_version: int | None = None
    published_at: datetime | None = None


class DraftEnvelope(BaseModel):
    article: DraftOut


class DraftSummary(BaseModel):
    id: str
    version: int
    status: str
    title: str
    abstract: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class DraftPage(BaseModel):
    articles: list[DraftSummary]
    next_cursor: str | None = None


class PublishedOut(BaseModel):
    id: str
    author: AuthorOut
    title: str
    content: str
    tags: list[str]
    version: int
    published_at: datetime
    updated_at: datetime


class PublishedEnvelope(BaseModel):
    article: PublishedOut


class PublishedSummary(BaseModel):
    id: str
    author: AuthorOut
    title: str
    abstract: str
    tags: list[str]
    published_at: datetime


class PublishedPage(BaseModel):
    articles: list[PublishedSummary]
    next_cursor: str | None = None


class TagCount(BaseModel):
    tag: str
    articles: int


class TagsOut(BaseModel):
    tags: list[TagCount]
