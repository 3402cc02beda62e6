"""Input and output models of follows, the feed and comments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from bloghub.api.v1.article_schemas import FIRST_PAGE, AuthorOut
from bloghub.api.v1.path_ids import Id
from bloghub.api.v1.schemas import CURSOR, DIGITS, TEXT, Input

COMMENT_TEXT = TEXT
MAX_COMMENT_CHARS = 10_000

_Key = Annotated[
    str,
    Field(
        min_length=1,
        max_length=512,
        description="the next_* value of the previous page",
    ),
    CURSOR,
]
_Limit = Annotated[int, Field(ge=1, le=100, description="page size, 1-100"), DIGITS]


class FollowOut(BaseModel):
    user_id: str
    following: bool


class FollowEnvelope(BaseModel):
    follow: FollowOut


class PersonOut(BaseModel):
    id: str
    nickname: str | None = None
    deleted: bool = False
    followed_at: datetime
    following: bool = Field(description="whether the caller follows them (false if anonymous)")


class PeoplePage(BaseModel):
    users: list[PersonOut]
    next_cursor: str | None = None


class CommentIn(Input):
    content: Annotated[
        str,
        Field(min_length=1, max_length=MAX_COMMENT_CHARS, description="plain text, never HTML"),
        COMMENT_TEXT,
    ]
    parent_id: (
        Annotated[
            Id,
            Field(
                description="the comment this replies to: one of this article's; "
                "one it does not have (or had, deleted since) is 422"
            ),
        ]
        | None
    ) = None


class CommentOut(BaseModel):
    id: str
    article_id: str
    author: AuthorOut
    parent_id: str | None = None
    root_id: str | None = None
    content: str
    created_at: datetime


class CommentEnvelope(BaseModel):
    comment: CommentOut


class ThreadOut(CommentOut):
    reply_count: int
    replies: list[CommentOut] = Field(description="the newest replies, oldest of them first")


class ThreadsQuery(BaseModel):
    limit: _Limit = FIRST_PAGE
    before: _Key | None = None


class ThreadsPage(BaseModel):
    comments: list[ThreadOut]
    next_before: str | None = None


class RepliesQuery(BaseModel):
    limit: _Limit = FIRST_PAGE
    after: _Key | None = None


class RepliesPage(BaseModel):
    replies: list[CommentOut]
    next_after: str | None = None
