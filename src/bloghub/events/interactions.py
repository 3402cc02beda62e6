"""Events of the interactions family: likes, collections and reads.

Keyed by article (``AGGREGATE``), so every event that moves one article's counters lands
on one partition, in order. Each names the article's author, so projectors that notify or
rank need no other read.
"""

from __future__ import annotations

from typing import ClassVar

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class InteractionEvent(Event):
    FAMILY: ClassVar[Family] = Family.INTERACTIONS
    AGGREGATE: ClassVar[str] = "article_id"

    article_id: str
    author_id: str


@registry.register
class ArticleLiked(InteractionEvent):
    TYPE: ClassVar[str] = "article.liked"

    user_id: str


@registry.register
class ArticleUnliked(InteractionEvent):
    TYPE: ClassVar[str] = "article.unliked"

    user_id: str


@registry.register
class ArticleCollected(InteractionEvent):
    """The article went into one of the user's collections."""

    TYPE: ClassVar[str] = "article.collected"

    user_id: str
    collection_id: str


@registry.register
class ArticleUncollected(InteractionEvent):
    TYPE: ClassVar[str] = "article.uncollected"

    user_id: str
    collection_id: str


@registry.register
class ArticleRead(InteractionEvent):
    """A published article's detail was served to ``reader``: a user id, or for anonymous
    readers ``anon:<hash of the client key>``. Appended in batches by the API; counted at
    most once per reader, article and hour by the projector."""

    TYPE: ClassVar[str] = "article.read"

    reader: str


class CollectionEvent(Event):
    FAMILY: ClassVar[Family] = Family.INTERACTIONS
    AGGREGATE: ClassVar[str] = "collection_id"

    collection_id: str
    owner_id: str


@registry.register
class CollectionCreated(CollectionEvent):
    TYPE: ClassVar[str] = "collection.created"

    name: str
