"""Read-model definitions that projectors write and queries read: the cache keys each
projector owns and the cached forms of its rows. Both sides import them from here, so the
API never imports a projector module (tables themselves are in adapters/postgres/tables.py).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import func

from bloghub.adapters import traditional_chinese
from bloghub.adapters.postgres.tables import articles
from bloghub.adapters.redis.cache import Cache

_SIMPLIFIED = traditional_chinese.simplified_table()


def tag_key(tag: str) -> str:
    """The form by which tags are one tag site-wide: compatibility forms folded (NFKC),
    lower-cased and traditional Chinese characters made simplified, so "Python", "python"
    and "python" in full-width letters (U+FF50 on, as a Chinese input method in full-width
    mode types them) are one tag, as are 數據庫 and 数据库: listed, counted and found as
    one (an article already keeps only one of them). Tags are kept in that form where they
    are looked up and counted; an article shows its tags as its author wrote them; search's
    documents keep them in this form too (``tag_keys``), which its tag filter matches, as
    its words match in either script. Lower case, not case folding: the tag lists show the
    word as written, not "strasse" for "Straße". NFKC again after lowering (which can
    leave text NFKC would change), so a key is its own key: a client that filters by a
    listed tag finds what the list counted."""
    lowered = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", tag).lower())
    return lowered.translate(_SIMPLIFIED)


def user_info_key(cache: Cache, user_id: str) -> str:
    """A public profile, owned by the users projector."""
    return cache.key("user", "info", user_id)


PUBLISHED_TTL_S = 3600


def published_key(cache: Cache, article_id: str) -> str:
    return cache.key("article", "pub", article_id)


def draft_key(cache: Cache, article_id: str) -> str:
    return cache.key("article", "draft", article_id)


def author_first_page_key(cache: Cache, author_id: str) -> str:
    return cache.key("articles", "author", author_id, "first")


def published_view(row: Any) -> dict[str, Any] | None:
    """The cached form of a published article (author details and counts are added per
    request); None unless the row is published."""
    if row is None or row.status != "published":
        return None
    return {
        "id": str(row.id),
        "author_id": str(row.author_id),
        "title": row.published_title,
        "content": row.published_content,
        "tags": list(row.published_tags or []),
        "version": row.published_version,
        "published_at": row.published_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


# A published article's update time is its published version's: an edit of the draft
# behind it does not move it. (A row from before 0023 that has no such time shows its
# last change until a replay of the articles projector fills it.)
PUBLISHED_UPDATED_AT = func.coalesce(articles.c.published_updated_at, articles.c.updated_at).label(
    "updated_at"
)

PUBLISHED_COLUMNS = (
    articles.c.id,
    articles.c.author_id,
    articles.c.status,
    articles.c.published_title,
    articles.c.published_content,
    articles.c.published_tags,
    articles.c.published_version,
    articles.c.published_at,
    PUBLISHED_UPDATED_AT,
)


def article_counts_key(cache: Cache, article_id: str) -> str:
    """An article's comment count as its detail shows it; the comments projector owns it.
    (The interactions' counts are added to each answer from their own Redis hash.)"""
    return cache.key("article", "comment_cnt", article_id)


def follow_counts_key(cache: Cache, user_id: str) -> str:
    """A user's follower and followee counts, owned by the social projector."""
    return cache.key("user", "follows", user_id)


def notification_view(row: Any) -> dict[str, Any]:
    """A notification as the API lists it and live sockets push it."""
    view: dict[str, Any] = {
        "id": str(row.id),
        "user_id": str(row.user_id),
        "kind": row.kind,
        "created_at": row.created_at.isoformat(),
        "read": bool(row.read),
    }
    for name in ("actor_id", "article_id", "comment_id", "milestone"):
        value = getattr(row, name)
        if value is not None:
            view[name] = value if name == "milestone" else str(value)
    return view
