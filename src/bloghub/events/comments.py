"""Events of the comments family.

Keyed by article, so a reply is never applied before its parent. A posted comment names
the article's author and the parent's author, so notifications need no other read.
"""

from __future__ import annotations

from typing import ClassVar

from bloghub.events.base import Event, registry
from bloghub.events.topics import Family


class CommentEvent(Event):
    FAMILY: ClassVar[Family] = Family.COMMENTS
    AGGREGATE: ClassVar[str] = "article_id"

    article_id: str
    comment_id: str


@registry.register
class CommentPosted(CommentEvent):
    """A top-level comment (``parent_id`` None) or a reply; ``root_id`` is the top-level
    comment of the reply's thread."""

    TYPE: ClassVar[str] = "comment.posted"

    author_id: str
    article_author_id: str
    parent_id: str | None = None
    root_id: str | None = None
    parent_author_id: str | None = None
    content: str
    # A public number for clients that want integer ids (RealWorld), reserved by the
    # command in the write-side index; None in comments from before numbers.
    number: int | None = None


@registry.register
class CommentDeleted(CommentEvent):
    """The comment and its whole subtree are gone; ``deleted_by`` is its author or the
    article's."""

    TYPE: ClassVar[str] = "comment.deleted"

    deleted_by: str
