"""The ranking's candidates: visible articles published within the window, streamed from
the interactions read model in keyset pages, so no run holds more than a page of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from bloghub.adapters.postgres.engine import translated
from bloghub.adapters.postgres.tables import article_stats
from bloghub.ranking.score import Candidate

s = article_stats.c
_COLUMNS = (s.article_id, s.author_id, s.published_at, s.read_cnt, s.like_cnt, s.collect_cnt)


async def candidates(
    engine: AsyncEngine, schema: str, *, since: datetime, page_rows: int
) -> AsyncIterator[Candidate]:
    """Every visible article published at or after ``since``, oldest first. Each page is
    its own short query (an index walk from the last key seen), so a run never pins a
    connection or a snapshot for its whole length."""
    after: tuple[datetime, str] | None = None
    while True:
        stmt = select(*_COLUMNS).where(s.visible, s.published_at >= since)
        if after is not None:
            stmt = stmt.where(tuple_(s.published_at, s.article_id) > after)
        stmt = stmt.order_by(s.published_at, s.article_id).limit(page_rows)
        async with translated(), engine.connect() as raw:
            conn = await raw.execution_options(schema_translate_map={None: schema})
            rows = list(await conn.execute(stmt))
        for r in rows:
            yield Candidate(
                str(r.article_id),
                str(r.author_id),
                r.published_at,
                int(r.read_cnt),
                int(r.like_cnt),
                int(r.collect_cnt),
            )
        if len(rows) < page_rows:
            return
        after = (rows[-1].published_at, str(rows[-1].article_id))
