"""Input and output models of the articles API."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from bloghub.api.v1.path_ids import Id
from bloghub.api.v1.schemas import CURSOR, DIGITS, LINE, PLAIN, TAG, WORD_SPACES, Input
from bloghub.readmodels import tag_key

MAX_CONTENT_BYTES = 100 * 1024
FIRST_PAGE = 20  # the default page size: the author's first page is the one cached


def _normal(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip())


def normal_within(limit: int) -> AfterValidator:
    """Trimmed and NFC, and held to ``limit`` characters once so: the bound is on what is
    stored, and NFC can lengthen text (a composition exclusion such as U+0958 becomes two
    characters, U+FB2C three), so text within it as sent may not be within it after."""

    def within(value: str) -> str:
        value = _normal(value)
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters (counted in NFC)")
        return value

    return AfterValidator(within)


def _content(value: str) -> str:
    if len(value.encode("utf-8", "surrogatepass")) > MAX_CONTENT_BYTES:
        raise ValueError("at most 100 KB")
    return value


_TAG_CHARS = 32
MAX_TAGS = 5
MAX_TAGS_SENT = 50
_SPACES = re.compile(f"[{WORD_SPACES}]+")


def normal_tag(raw: str, *, most: int = _TAG_CHARS) -> str:
    """A tag as stored: trimmed, NFC, 1-32 characters (``most``), visible words joined by
    single ASCII spaces (whichever spaces were typed between them). ``ValueError`` says
    what is wrong."""
    tag = _SPACES.sub(" ", _normal(raw)).strip(" ")
    if not tag:
        raise ValueError("a tag must not be blank")
    if len(tag) > most:
        raise ValueError(f"a tag has at most {most} characters")
    if not TAG.matches(tag):
        raise ValueError(TAG.message)
    return tag


# A filter names a tag as its author wrote it or as the tag lists show it (``tag_key``),
# and folding can lengthen a tag many times over: "\u0130" lower-cased is two characters,
# "\u3231" is "(\u682a)" and "\ufdfa" eighteen, the most any character folds to
# (tests/unit/test_tag_filters.py). So a filter takes as many characters as a tag of 32
# of those folds to, and a text longer once folded names no tag.
_LONGEST_FOLD = len(tag_key("\ufdfa"))
FILTER_TAG_CHARS = _TAG_CHARS * _LONGEST_FOLD
# Folding writes a spacing accent (U+00A8, U+FFE3, ...) as a space and its combining mark
# ("\uffe3" is " \u0304"), so a listed tag may begin with a space or hold two in a row. A
# filter keeps such a space, one directly before a combining mark: it is the accent's, not
# one typed around or between words. The published pattern lets a filter begin with it.
FILTER_TAG_PATTERN = "^ ?" + TAG.pattern.removeprefix("^")
_FILTER_SPACES = re.compile(f"^\\s+|\\s+\\Z|[{WORD_SPACES}]+")


def filter_tag(raw: str) -> str:
    """A tag filter as tags are kept (``normal_tag``: trimmed, NFC, runs of spaces made
    one), or as the tag lists show it (``tag_key``), up to ``FILTER_TAG_CHARS`` once
    folded. ``ValueError`` says what is wrong."""
    normal_tag(raw, most=FILTER_TAG_CHARS)  # a kept tag's checks, on its words
    text = unicodedata.normalize("NFC", raw)

    def spaces(run: re.Match[str]) -> str:
        if run.end() == len(text):
            return ""
        accent = unicodedata.category(text[run.end()]).startswith("M")
        return " " * min(len(run.group()), int(run.start() > 0) + int(accent))

    tag = _FILTER_SPACES.sub(spaces, text)
    if len(tag_key(tag)) > FILTER_TAG_CHARS:
        raise ValueError(
            f"longer than any tag: at most {FILTER_TAG_CHARS} characters as the tag lists show it"
        )
    return tag


def _tags(values: list[str]) -> list[str]:
    """Distinct tags in the order sent; tags that differ only in case are one (the first
    spelling kept), so an article cannot carry "Python" and "python" at once. One by the
    site's own key (``tag_key``): an article keeps two tags the tag lists count apart."""
    seen: dict[str, str] = {}
    for raw in values:
        tag = normal_tag(raw)
        seen.setdefault(tag_key(tag), tag)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} distinct tags")
    return list(seen.values())


# The bound holds for the text as sent and for the text as stored (NFC), which NFC may
# lengthen (see ``normal_within``): text NFC shortens (decomposed Hangul, say) is still
# held to the bound as sent, which the published schema states.
TITLE_CHARS = 128
Title = Annotated[
    str, Field(min_length=1, max_length=TITLE_CHARS), LINE, normal_within(TITLE_CHARS)
]
Content = Annotated[
    str,
    Field(
        max_length=MAX_CONTENT_BYTES,
        description="Markdown, at most 100 KB in UTF-8: bytes, not characters (a character "
        "of Chinese text is three)",
    ),
    PLAIN,
    AfterValidator(_content),
]
# Each tag is checked by ``normal_tag`` (after trimming, so an error names ``tags``); the
# document states the same rule for the tag as it is kept.
_TAG_FORM = {"maxLength": _TAG_CHARS, "pattern": TAG.pattern}
Tags = Annotated[
    list[Annotated[str, Field(json_schema_extra=_TAG_FORM)]],
    # The list as sent may repeat a tag; only distinct ones count towards the five.
    Field(max_length=MAX_TAGS_SENT, description="at most 5 distinct tags"),
    AfterValidator(_tags),
]


class PageQuery(BaseModel):
    """Paging of a list; other query parameters are ignored."""

    limit: Annotated[int, Field(ge=1, le=100, description="page size, 1-100"), DIGITS] = FIRST_PAGE
    cursor: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=512,
                description="next_cursor of the previous page",
            ),
            CURSOR,
        ]
        | None
    ) = None


class ListingQuery(PageQuery):
    author: Annotated[Id, Field(description="only this author's articles")] | None = None
    tag: (
        Annotated[
            str,
            Field(
                max_length=FILTER_TAG_CHARS,
                json_schema_extra={"pattern": FILTER_TAG_PATTERN},
                description="only articles with this tag (in any case), as its author wrote "
                f"it or as the tag lists show it; at most {FILTER_TAG_CHARS} characters as "
                "the tag lists would show it",
            ),
            # Normalised as stored tags are, so it can match them.
            AfterValidator(filter_tag),
        ]
        | None
    ) = None


class ArticleIn(Input):
    title: Title
    content: Content = ""
    tags: Tags = Field(default_factory=list)


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


class ArticleEdit(Input):
    """A draft's new title, and its content and tags: each left out is kept as it is, so a
    client sending the title alone does not empty the draft."""

    title: Title
    content: Annotated[Content | None, Field(description="left out: kept")] = None
    tags: Annotated[Tags | None, Field(description="left out: kept")] = None
    # The draft version this edit is based on. JSON has one number type: 3.0 is 3. At most
    # what the store keeps (a bigint).
    version: Annotated[int, Field(ge=1, le=2**63 - 1), BeforeValidator(_whole)] | None = None


class DraftRef(BaseModel):
    """A draft as a write names it: the version it is at now (send it with the next
    edit), and its status when the write changed it."""

    id: str
    version: int
    status: str | None = None


class DraftRefEnvelope(BaseModel):
    article: DraftRef


class AuthorOut(BaseModel):
    id: str
    nickname: str | None = None
    deleted: bool = False  # the author erased their account: the article stays, unnamed


class Interactive(BaseModel):
    """What an article read adds from the interactions read model: the counts, and for a
    signed-in caller whether they like it and have it in a collection (null otherwise)."""

    read_cnt: int = 0
    like_cnt: int = 0
    collect_cnt: int = 0
    liked: bool | None = None
    collected: bool | None = None


class DraftOut(Interactive):
    """The author's own article; its counts are the published article's (kept, frozen,
    while it is withdrawn; 0 for one never published)."""

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
    comment_cnt: int = 0  # comments under it, replies included (api/article_counts.py)


class DraftEnvelope(BaseModel):
    article: DraftOut


class DraftSummary(Interactive):
    id: str
    version: int
    status: str
    title: str
    abstract: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None
    comment_cnt: int = 0  # comments under it, replies included (api/article_counts.py)


class DraftPage(BaseModel):
    articles: list[DraftSummary]
    next_cursor: str | None = None


INTERACTIVE_FIELDS = set(Interactive.model_fields)


class PublishedOut(Interactive):
    id: str
    author: AuthorOut
    title: str
    content: str
    tags: list[str]
    version: int
    published_at: datetime
    updated_at: datetime
    comment_cnt: int = 0  # comments under it, replies included (api/article_counts.py)


class PublishedEnvelope(BaseModel):
    article: PublishedOut


class PublishedSummary(Interactive):
    id: str
    author: AuthorOut
    title: str
    abstract: str
    tags: list[str]
    published_at: datetime
    comment_cnt: int = 0  # comments under it, replies included (api/article_counts.py)


class PublishedPage(BaseModel):
    articles: list[PublishedSummary]
    next_cursor: str | None = None


class TagCount(BaseModel):
    tag: str
    articles: int


class TagsOut(BaseModel):
    tags: list[TagCount]
