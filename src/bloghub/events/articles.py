"""Events of the articles family. Each carries the author, so every projector can check
ownership without another read, and publish carries the text it makes public."""

from __future__ import annotations

from typing import ClassVar

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class ArticleEvent(Event):
    FAMILY: ClassVar[Family] = Family.ARTICLES
    AGGREGATE: ClassVar[str] = "article_id"

    article_id: str
    author_id: str
    version: int  # the draft version this event leaves behind; one per change


@registry.register
class ArticleDrafted(ArticleEvent):
    TYPE: ClassVar[str] = "article.drafted"

    title: str
    content: str
    tags: list[str]
    # The article's URL name from its title, reserved in the write-side index (kind
    # "slug") by the command; None in events written before articles had slugs.
    slug: str | None = None
    # A one-line summary the author wrote (Conduit's ``description``); optional.
    description: str | None = None


@registry.register
class DraftEdited(ArticleEvent):
    TYPE: ClassVar[str] = "article.draft_edited"

    title: str
    content: str
    tags: list[str]
    # The article's URL name from its title, reserved in the write-side index (kind
    # "slug") by the command; None in events written before articles had slugs.
    slug: str | None = None
    # A one-line summary the author wrote (Conduit's ``description``); optional.
    description: str | None = None


@registry.register
class ArticlePublished(ArticleEvent):
    """The draft at ``version`` became the published version."""

    TYPE: ClassVar[str] = "article.published"

    title: str
    content: str
    tags: list[str]
    # The article's URL name from its title, reserved in the write-side index (kind
    # "slug") by the command; None in events written before articles had slugs.
    slug: str | None = None
    # A one-line summary the author wrote (Conduit's ``description``); optional.
    description: str | None = None


@registry.register
class ArticleWithdrawn(ArticleEvent):
    TYPE: ClassVar[str] = "article.withdrawn"


@registry.register
class ArticleDeleted(ArticleEvent):
    TYPE: ClassVar[str] = "article.deleted"
