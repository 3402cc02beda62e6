"""Queries over the articles read model (active generation), with keyset pagination."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, desc, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import read_all
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import article_tags, articles, tag_counts
from bloghub.api.consistency import Generations
from bloghub.api.graphemes import cut_before
from bloghub.commands.articles import ArticleState, Draft
from bloghub.errors import InvalidInput
from bloghub.readmodels import PUBLISHED_COLUMNS, tag_key

ABSTRACT_CHARS = 200
a = articles.c


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("cursor is not valid", fields={"cursor": "not valid"}) from None
    values = raw.split("|")
    if len(values) != parts or not all(values):
        raise InvalidInput("cursor is not valid", fields={"cursor": "not valid"})
    return values


# What of a body an abstract reads at first: enough for its opening words however marked
# up; four times more while that gives too little text (a long link, many blank lines).
_READ_CHARS = 8 * ABSTRACT_CHARS
# Markdown's marks, where Markdown reads them as marks: a heading's hashes, a quote's,
# a list item's and a fence's opening (with its language) at the start of a line, a rule;
# a link's or an image's address; emphasis around words (underscores not within a word).
# Anywhere else a "#" or a "*" is text: "C#", "2*3=6", "snake_case"; so is one escaped.
_FENCE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[^\n]*$", re.M)
_RULE = re.compile(r"^ {0,3}(?:[-*_] *){3,}$", re.M)
_LINE_MARKS = re.compile(r"^ {0,3}(?:#{1,6}(?=\s|$)|>+|[-+*](?=\s)|\d{1,9}[.)](?=\s))", re.M)
_CLOSING_HASHES = re.compile(r"\s#+[ \t]*$", re.M)
_LINK = re.compile(r"!?\[([^\[\]\n]*)\]\([^)\n]*\)")  # the innermost: a badge links an image
_CODE = re.compile(r"(`+)(.+?)\1")
_STARS = re.compile(r"(\*{1,3})(?=\S)(.+?)(?<=\S)\1")
_UNDERSCORES = re.compile(r"(?<!\w)(_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")
_CUT_LINK = re.compile(r"!?\[[^\[\]\n]*(?:\]\([^)\n]*)?$")  # a link the window ends in
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
# An escaped mark is held, while the marks go, as a character of a private-use plane.
_HELD = 0xF0000
_UNHOLD = {_HELD + c: chr(c) for c in range(0x21, 0x7F)}


def abstract(markdown: str) -> str:
    """A plain-text opening of the body: Markdown's marks dropped (the words of a link,
    not its address), whitespace folded, cut (with "…") between two characters as a
    reader sees them (grapheme clusters: never within an emoji, a flag, an accented
    letter, a Thai vowel sign or a Devanagari conjunct)."""
    body = markdown.lstrip()
    read = _READ_CHARS
    text, whole = _opening(body, read)
    while len(text) <= ABSTRACT_CHARS and not whole:
        read *= 4
        text, whole = _opening(body, read)
    if len(text) <= ABSTRACT_CHARS:
        return text
    return text[: cut_before(text, ABSTRACT_CHARS - 1)].rstrip() + "…"


def _opening(body: str, read: int) -> tuple[str, bool]:
    """The plain text of the body's first ``read`` characters, to the end of the paragraph
    they end in if it ends within as many again (no mark spans paragraphs), else without
    a link cut off at the end; and whether that is all of it."""
    if len(body) <= read:
        return _plain(body), True
    end = body.find("\n\n", read, 2 * read)
    if end >= 0:
        return _plain(body[:end]), False
    if len(body) <= 2 * read:
        return _plain(body), True
    return _plain(_CUT_LINK.sub("", body[: 2 * read])), False


def _plain(markdown: str) -> str:
    text = _ESCAPED.sub(lambda m: chr(_HELD + ord(m.group(1))), markdown)
    for marks in (_FENCE, _RULE, _LINE_MARKS, _CLOSING_HASHES):
        text = marks.sub(" ", text)
    for _ in range(3):  # a link around an image, then the link
        text, links = _LINK.subn(r"\1", text)
        if not links:
            break
    for around in (_CODE, _STARS, _UNDERSCORES):
        text = around.sub(r"\2", text)
    return " ".join(text.translate(_UNHOLD).split())


class ArticleQueries:
    projector = "articles"

    def __init__(self, engine: AsyncEngine, generations: Generations) -> None:
        self._engine = engine
        self._generations = generations

    async def state(self, article_id: str) -> ArticleState | None:
        row = await self._first(
            select(
                a.id,
                a.author_id,
                a.version,
                a.status,
                a.title,
                a.content,
                a.tags,
                a.description,
                a.slug,
                a.published_version,
            ).where(a.id == article_id)
        )
        if row is None:
            return None
        return ArticleState(
            str(row.id),
            str(row.author_id),
            row.version,
            row.status,
            Draft(row.title, row.content, list(row.tags), row.description),
            row.slug,
            row.published_version,
        )

    async def draft(self, article_id: str) -> Any:
        return await self._first(select(articles).where(a.id == article_id))

    async def published(self, article_id: str) -> Any:
        return await self._first(select(*PUBLISHED_COLUMNS).where(a.id == article_id))

    async def published_many(self, ids: list[str]) -> dict[str, Any]:
        """The published ones among ``ids`` (``PUBLISHED_COLUMNS``), by id."""
        if not ids:
            return {}
        stmt = select(*PUBLISHED_COLUMNS).where(a.id.in_(ids), a.status == "published")
        return {str(r.id): r for r in await self._all(stmt)}

    async def by_author(self, author_id: str, limit: int, cursor: str | None) -> Page:
        stmt = select(articles).where(a.author_id == author_id)
        if cursor is not None:
            (after,) = decode_cursor(cursor, 1)
            stmt = stmt.where(a.id < _uuid(after))
        rows = await self._all(stmt.order_by(desc(a.id)).limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, encode_cursor(str(rows[-1].id)) if more and rows else None)

    async def published_list(
        self, *, author: str | None, tag: str | None, limit: int, cursor: str | None
    ) -> Page:
        stmt = select(*PUBLISHED_COLUMNS).where(a.status == "published")
        if author is not None:
            stmt = stmt.where(a.author_id == _uuid(author, "author"))
        if tag is not None:
            tagged = select(article_tags.c.article_id).where(article_tags.c.tag == tag_key(tag))
            stmt = stmt.where(a.id.in_(tagged))
        if cursor is not None:
            at, after = decode_cursor(cursor, 2)
            stmt = stmt.where(tuple_(a.published_at, a.id) < (_time(at), _uuid(after)))
        rows = await self._all(stmt.order_by(desc(a.published_at), desc(a.id)).limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].published_at.isoformat(), str(rows[-1].id)) if more else None
        return Page(rows, nxt)

    async def tags(self, limit: int = 100) -> list[tuple[str, int]]:
        """The most used tags with their published articles, from the kept counts (an
        index walk of ``limit`` rows, however many articles there are)."""
        t = tag_counts.c
        stmt = select(t.tag, t.articles).order_by(desc(t.articles), t.tag).limit(limit)
        return [(r.tag, r.articles) for r in await self._all(stmt)]

    async def _first(self, stmt: Select[Any]) -> Any:
        rows = await self._all(stmt.limit(1))
        return rows[0] if rows else None

    async def _all(self, stmt: Select[Any]) -> list[Any]:
        schema = schema_name(self.projector, await self._generations.generation(self.projector))
        engine = await self._generations.engine(self.projector, self._engine)
        return await read_all(engine, stmt, {None: schema})


def _uuid(value: str, field: str = "cursor") -> str:
    """An id from a query parameter or a cursor; 422 naming that parameter otherwise."""
    try:
        return str(UUID(value))
    except ValueError:
        raise InvalidInput(f"{field} is not valid", fields={field: "not valid"}) from None


def _time(value: str) -> datetime:
    """The instant in a cursor. This API writes each with its offset; one without, or one
    that is no instant in UTC (``0001-01-01T00:00:00+14:00`` is in the year 0 there), was
    never handed out, and the store could not even compare it."""
    try:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError(value)
        at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput("cursor is not valid", fields={"cursor": "not valid"}) from None
    return at
