"""Article slugs: the URL name made from a title, unique by the write-side index.

A slug is reserved (kind "slug", owned by the article) before the event that carries it
is recorded; a title change reserves the new slug and frees the old one once the change is
recorded, so the old slug stops resolving and may name another article later."""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid

from bloghub.commands.context import CommandDeps, Key
from bloghub.errors import Conflict

SLUG = "slug"
MAX_BASE_CHARS = 80
# Tries with a random suffix after the plain slug is taken; each has 2^32 choices, so
# running out means the index is failing, not that the names are used up.
SUFFIX_TRIES = 4
_HYPHENS = re.compile(r"-{2,}")
# Combining marks (the vowel signs of Devanagari or Thai, Arabic's harakat, accents written
# apart) belong to the letter they sit on; ``\w`` leaves them out, and would break words.
_MARKS = frozenset({"Mn", "Mc", "Me"})
_SUFFIX = r"(?:-[0-9a-f]{8})?"  # what ``reserve_slug`` adds to a taken slug
# Slugs a fixed route under /api/articles/ answers instead of the article
# (`GET /api/articles/feed` is the feed): taken from the start, so a title that makes one
# gets the suffix, as a taken slug does.
ROUTE_NAMES = frozenset({"feed"})


def slug_base(title: str) -> str:
    """Lower-case words of the title joined by hyphens; letters of any script are kept,
    with their marks (a Chinese title keeps its characters, a Hindi one its vowel signs).
    A title of symbols only gives "article"."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    kept = "".join(ch if _in_word(ch) else "-" for ch in folded)
    words = _HYPHENS.sub("-", kept).strip("-")
    return _cut(words).rstrip("-") or "article"


def _in_word(ch: str) -> bool:
    """A letter or digit of any script (what ``\\w`` takes, but the underscore), or a
    combining mark."""
    return ch.isalnum() or unicodedata.category(ch) in _MARKS


def _cut(words: str) -> str:
    """At most ``MAX_BASE_CHARS``, never between a letter and the marks on it (a letter cut
    from its vowel sign would read as another word)."""
    end = MAX_BASE_CHARS
    while 0 < end < len(words) and unicodedata.category(words[end]) in _MARKS:
        end -= 1
    return words[:end]


def _reads_as_an_id(base: str) -> bool:
    """Whether a slug reads as an article id: articles from before slugs are found by their
    id where no slug matches, so such a slug would take over another article's address."""
    try:
        uuid.UUID(base)
    except ValueError:
        return False
    return True


def same_base(slug: str | None, title: str) -> bool:
    """Whether ``slug`` was made from a title equal to ``title`` in slug form: then a
    change of the title keeps its slug."""
    if slug is None or slug in ROUTE_NAMES:
        return False  # one taken before it was a route's is given up at the next change
    return re.fullmatch(re.escape(slug_base(title)) + _SUFFIX, slug) is not None


async def reserve_slug(deps: CommandDeps, title: str, article_id: str) -> Key:
    """Reserve a slug for ``title``: the plain form, else the plain form with a random
    suffix (equal titles get distinct slugs; a route's name, or an id, is never free)."""
    base = slug_base(title)
    plain = [] if base in ROUTE_NAMES or _reads_as_an_id(base) else [base]
    candidates = [*plain, *(f"{base}-{secrets.token_hex(4)}" for _ in range(SUFFIX_TRIES))]
    try:
        slug = await deps.reservations.reserve_first(SLUG, candidates, article_id)
    except Conflict:
        raise Conflict("no free slug for that title; try again", fields={"slug": "taken"}) from None
    return (SLUG, slug, article_id)


async def free_slug_later(deps: CommandDeps, slug: str | None, article_id: str) -> None:
    """Free a slug the article gave up, once the change that gave it up is recorded."""
    if slug is None:
        return

    async def free() -> None:
        await deps.reservations.release_confirmed(SLUG, slug, article_id)

    await deps.after("free_old_slug", free, article_id=article_id)
