"""RealWorld's request bodies, each field checked by the same rules as the native API's
(``api/v1/schemas.py``, ``article_schemas.py``); unknown fields are ignored, as RealWorld
clients send extra ones."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from bloghub.api.v1.article_schemas import Content, Tags, Title
from bloghub.api.v1.schemas import (
    LINE,
    PLAIN,
    UNBROKEN,
    VISIBLE,
    AboutMe,
    Email,
    NewPassword,
    Nickname,
    Password,
    StoredName,
)
from bloghub.api.v1.social_schemas import COMMENT_TEXT, MAX_COMMENT_CHARS

MAX_IMAGE_URL = 2048


def _web_url(value: str) -> str | None:
    """An avatar is shown by browsers: only an http(s) address, never ``javascript:``.
    An empty string (some clients send it for "no image") clears it."""
    if not value:
        return None
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:
        raise ValueError("must be an http or https URL with a valid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    if "@" in parts.netloc:
        # Browsers load no image whose address carries credentials, and one that seems to
        # name a site before its @-sign names another (https://bank.example@evil.example).
        raise ValueError("must be an http or https URL without a user name or password")
    return value


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", str_max_length=200_000)


Image = Annotated[str, Field(max_length=MAX_IMAGE_URL), UNBROKEN, AfterValidator(_web_url)]
Description = Annotated[str, Field(min_length=1, max_length=256), LINE]
# Spaces and line breaks alone are blank, as a blank title or comment is.
ArticleBody = Annotated[Content, Field(min_length=1), VISIBLE]
CommentBody = Annotated[str, Field(min_length=1, max_length=MAX_COMMENT_CHARS), COMMENT_TEXT]


class NewUser(Body):
    username: Nickname
    email: Email
    password: NewPassword


class NewUserIn(Body):
    user: NewUser


class LoginUser(Body):
    email: Annotated[str, Field(min_length=1, max_length=254), PLAIN, VISIBLE]
    password: Password


class LoginIn(Body):
    user: LoginUser


class UpdateUser(Body):
    """Only the fields sent change; ``bio`` and ``image`` may be null to clear them.
    Settings pages send the whole form back: an empty or null password means "unchanged", and the
    username is checked as a new nickname only if it differs (``users.update``), so an
    account keeps a name taken before the address rules."""

    @model_validator(mode="before")
    @classmethod
    def _unchanged_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data and data["password"] in ("", None):
            return {k: v for k, v in data.items() if k != "password"}
        return data

    email: Email | None = None
    password: NewPassword | None = None
    username: StoredName | None = None
    bio: AboutMe | None = None
    image: Image | None = None


class UpdateUserIn(Body):
    user: UpdateUser


class NewArticle(Body):
    title: Title
    description: Description
    body: ArticleBody
    tagList: Tags = Field(default_factory=list)


class NewArticleIn(Body):
    article: NewArticle


class UpdateArticle(Body):
    title: Title | None = None
    description: Description | None = None
    body: ArticleBody | None = None
    tagList: Tags | None = None


class UpdateArticleIn(Body):
    article: UpdateArticle


class NewComment(Body):
    body: CommentBody


class NewCommentIn(Body):
    comment: NewComment
