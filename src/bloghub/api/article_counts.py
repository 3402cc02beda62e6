"""The counts shown with every published article, in its detail and in every listing.

Every article a reader is shown passes through ``counted``: comments from the comments
read model; likes, collects and reads from ``article_stats`` of the active interactions
generation (zero where it has no row, or while there is no such generation yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from starlette.requests import Request

from bloghub.adapters.postgres.tables import article_stats
from bloghub.api.comment_queries import CommentQueries
from bloghub.api.consistent import pinned, through_cache
from bloghub.api.http import container
from bloghub.api.read_models import ReadModel
from bloghub.api.v1.article_schemas import ArticleCounts, PublishedOut, PublishedSummary
from bloghub.events.topics import Family
from bloghub.readmodels import article_counts_key

# What the counts are read from: a read showing them waits for these too.
COUNTS_READS = [("comments", (Family.COMMENTS,))]
COUNTS_TTL_S = 300

Shown = TypeVar("Shown", PublishedOut, PublishedSummary)


async def counted(request: Request, shown: Sequence[Shown], *, cached: bool = False) -> list[Shown]:
    """``shown`` with their counts. ``cached``: through the counts entry the projectors
    keep fresh (for a detail, whose body the hot tier keeps while that entry stands)."""
    ids = [a.id for a in shown]
    if cached and len(ids) == 1:
        found = await through_cache(
            request,
            article_counts_key(container(request).cache, ids[0]),
            COUNTS_TTL_S,
            lambda: _dumped(request, ids),
        )
        counts = {k: ArticleCounts.model_validate(v) for k, v in found.items()}
    else:
        counts = await counts_of(request, ids)
    return [a.model_copy(update={"counts": counts.get(a.id, ArticleCounts())}) for a in shown]


async def counts_of(request: Request, article_ids: list[str]) -> dict[str, ArticleCounts]:
    if not article_ids:
        return {}
    c = container(request)
    comments = await CommentQueries(c.engine, pinned(request)).counts(article_ids)
    stats = await _stats(request, article_ids)
    return {a: ArticleCounts(comments=comments.get(a, 0), **stats.get(a, {})) for a in article_ids}


async def _dumped(request: Request, ids: list[str]) -> dict[str, Any]:
    return {k: v.model_dump() for k, v in (await counts_of(request, ids)).items()}


async def _stats(request: Request, article_ids: list[str]) -> dict[str, dict[str, int]]:
    generations = pinned(request)
    if await generations.active("interactions") is None:
        return {}
    s = article_stats.c
    stmt = select(s.article_id, s.like_cnt, s.collect_cnt, s.read_cnt).where(
        s.article_id.in_(article_ids)
    )
    rows = await ReadModel("interactions", container(request).engine, generations).all(stmt)
    return {
        str(r.article_id): {"likes": r.like_cnt, "collects": r.collect_cnt, "reads": r.read_cnt}
        for r in rows
    }
