"""The comment count shown with every published article, in its detail and in every
listing. (The interactions' counts and the caller's marks are added by
``api/v1/interactions.py: interactive``.)

Every article a reader is shown passes through ``counted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from starlette.requests import Request

from bloghub.api.comment_queries import CommentQueries
from bloghub.api.consistent import pinned, through_cache
from bloghub.api.http import container
from bloghub.api.v1.article_schemas import PublishedOut, PublishedSummary
from bloghub.events.topics import Family
from bloghub.readmodels import article_counts_key

# What the counts are read from: a read showing them waits for these too.
COUNTS_READS = [("comments", (Family.COMMENTS,))]
COUNTS_TTL_S = 300

Shown = TypeVar("Shown", PublishedOut, PublishedSummary)


async def counted(request: Request, shown: Sequence[Shown], *, cached: bool = False) -> list[Shown]:
    """``shown`` with their comment counts. ``cached``: through the counts entry the comments
    projector keeps fresh (for a detail, whose body the hot tier keeps while that entry
    stands)."""
    ids = [a.id for a in shown]
    if cached and len(ids) == 1:
        found: dict[str, Any] = await through_cache(
            request,
            article_counts_key(container(request).cache, ids[0]),
            COUNTS_TTL_S,
            lambda: counts_of(request, ids),
        )
        counts = {k: int(v) for k, v in found.items()}
    else:
        counts = await counts_of(request, ids)
    return [a.model_copy(update={"comment_cnt": counts.get(a.id, 0)}) for a in shown]


async def counts_of(request: Request, article_ids: list[str]) -> dict[str, int]:
    if not article_ids:
        return {}
    return await CommentQueries(container(request).read_engine, pinned(request)).counts(article_ids)
