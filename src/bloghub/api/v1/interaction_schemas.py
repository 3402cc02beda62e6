"""Input and output models of the interactions API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from bloghub.api.v1.article_schemas import PageQuery, PublishedSummary, normal_within
from bloghub.api.v1.schemas import LINE, Input

NAME_CHARS = 64
CollectionName = Annotated[
    str, Field(min_length=1, max_length=NAME_CHARS), LINE, normal_within(NAME_CHARS)
]


class CollectionIn(Input):
    name: CollectionName


class CollectionRef(BaseModel):
    """A collection as a write names it."""

    id: str
    name: str


class CollectionOut(CollectionRef):
    """A collection as the caller's list shows it."""

    created_at: datetime
    articles: int


class CollectionEnvelope(BaseModel):
    collection: CollectionRef


class CollectionsOut(BaseModel):
    collections: list[CollectionOut]


class LikeOut(BaseModel):
    id: str
    liked: bool


class LikeEnvelope(BaseModel):
    article: LikeOut


class EntryOut(BaseModel):
    id: str
    collected: bool


class EntryEnvelope(BaseModel):
    collection: CollectionRef
    article: EntryOut


class CollectedArticle(PublishedSummary):
    """A published article in a collection, as listings show it, and when it was put in."""

    added_at: datetime


class CollectedPage(BaseModel):
    articles: list[CollectedArticle]
    next_cursor: str | None = None


EntriesQuery = PageQuery
