"""What a ranking entry shows beside its score: the article's published title, tags and
time, its author, its counts. Read once per run for the few articles that made the top,
from the articles and users read models' active generations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.generations import schema_name
from bloghub.adapters.postgres.tables import articles, comment_counts, users
from bloghub.ranking.score import Scored
from bloghub.readmodels import PUBLISHED_COLUMNS, published_view


async def _rows(engine: AsyncEngine, schema: str, stmt: Select[Any]) -> list[Any]:
    async with translated(), engine.connect() as raw:
        conn = await raw.execution_options(schema_translate_map={None: schema})
        return list(await conn.execute(stmt))


async def published_views(
    engine: AsyncEngine, generation: int, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The cached form (``published_view``) of each of ``ids`` that is published."""
    if not ids:
        return {}
    stmt = select(*PUBLISHED_COLUMNS).where(articles.c.id.in_(list(ids)))
    rows = await _rows(engine, schema_name("articles", generation), stmt)
    views = (published_view(r) for r in rows)
    return {v["id"]: v for v in views if v is not None}


async def authors(
    engine: AsyncEngine, generation: int | None, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``{"id", "nickname", "deleted": false}`` per author, ``{"id", "nickname": null,
    "deleted": true}`` once erased: as an article's detail shows them."""
    if not ids or generation is None:
        return {}
    u = users.c
    stmt = select(u.id, u.nickname, u.erased_at).where(u.id.in_(sorted(set(ids))))
    out: dict[str, dict[str, Any]] = {}
    for r in await _rows(engine, schema_name("users", generation), stmt):
        if r.erased_at is not None:
            out[str(r.id)] = {"id": str(r.id), "nickname": None, "deleted": True}
        else:
            out[str(r.id)] = {"id": str(r.id), "nickname": r.nickname, "deleted": False}
    return out


async def comments_under(
    engine: AsyncEngine, generation: int | None, ids: Sequence[str]
) -> dict[str, int]:
    """Each article's comments, replies included, as its detail counts them (none for an
    article not commented on, or before the comments model has a generation)."""
    if not ids or generation is None:
        return {}
    n = comment_counts.c
    stmt = select(n.article_id, n.comments).where(n.article_id.in_(list(ids)))
    rows = await _rows(engine, schema_name("comments", generation), stmt)
    return {str(r.article_id): int(r.comments) for r in rows}


def utc_text(at: datetime) -> str:
    """A UTC time as the rest of the API writes it (pydantic's form): ``...Z``."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def entry(
    ranked: Scored, view: dict[str, Any], author: dict[str, Any] | None, comments: int = 0
) -> dict[str, Any]:
    c = ranked.candidate
    return {
        "id": c.article_id,
        "title": view["title"],
        "author": author or {"id": c.author_id},
        "tags": view["tags"],
        "published_at": utc_text(c.published_at),
        "read_cnt": c.reads,
        "like_cnt": c.likes,
        "collect_cnt": c.collects,
        "comment_cnt": comments,
        "score": ranked.score,
    }
