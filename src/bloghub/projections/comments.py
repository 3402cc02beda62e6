"""The comments projector: comment trees per article and the live comments per article.

Comment events are keyed by article, so a reply is applied after its parent and a delete
after what it deletes. A reply whose parent is gone by the time it applies (deleted in
between) is dropped, as its thread was: the tree never holds an orphan.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, exists, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import comment_counts, comments
from bloghub.events.base import Recorded
from bloghub.events.comments import CommentDeleted, CommentEvent, CommentPosted
from bloghub.events.topics import Family
from bloghub.projections.postgres_sink import PostgresProjector
from bloghub.readmodels import article_counts_key

c = comments.c


class CommentsProjector(PostgresProjector):
    name = "comments"
    families: tuple[Family, ...] = (Family.COMMENTS,)

    async def handle(self, conn: AsyncConnection, records: Sequence[Recorded]) -> None:
        for rec in records:
            ev = rec.event
            if isinstance(ev, CommentPosted):
                await self._posted(conn, ev, rec.envelope.occurred_at)
            elif isinstance(ev, CommentDeleted):
                await self._deleted(conn, ev)

    async def _posted(self, conn: AsyncConnection, ev: CommentPosted, at: datetime) -> None:
        row = {
            "id": ev.comment_id,
            "article_id": ev.article_id,
            "article_author_id": ev.article_author_id,
            "author_id": ev.author_id,
            "parent_id": ev.parent_id,
            "root_id": ev.root_id,
            "content": ev.content,
            "created_at": at,
            "number": ev.number,
        }
        values = select(*(literal(v, c[k].type).label(k) for k, v in row.items()))
        if ev.parent_id is not None:
            values = values.where(
                exists().where(c.id == ev.parent_id, c.article_id == ev.article_id)
            )
        done = await conn.execute(
            insert(comments)
            .from_select(list(row), values)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        if not done.rowcount:
            return  # already applied, or its parent is gone
        if ev.root_id is not None:
            await conn.execute(
                update(comments).where(c.id == ev.root_id).values(replies=c.replies + 1)
            )
        await _count(conn, ev.article_id, 1)

    async def _deleted(self, conn: AsyncConnection, ev: CommentDeleted) -> None:
        subtree = select(c.id).where(c.id == ev.comment_id).cte("subtree", recursive=True)
        subtree = subtree.union_all(select(c.id).where(c.parent_id == subtree.c.id))
        gone = list(
            await conn.execute(
                delete(comments)
                .where(c.id.in_(select(subtree.c.id)), c.article_id == ev.article_id)
                .returning(c.id, c.root_id)
            )
        )
        if not gone:
            return
        top = next(r for r in gone if str(r.id) == ev.comment_id)
        if top.root_id is not None:
            await conn.execute(
                update(comments).where(c.id == top.root_id).values(replies=c.replies - len(gone))
            )
        await _count(conn, ev.article_id, -len(gone))

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        cache = self.cache
        if cache is None:
            return set()
        touched = {r.event.article_id for r in records if isinstance(r.event, CommentEvent)}
        return {article_counts_key(cache, a) for a in touched}


async def _count(conn: AsyncConnection, article_id: str, by: int) -> None:
    stmt = insert(comment_counts).values(article_id=article_id, comments=by)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["article_id"],
            set_={"comments": comment_counts.c.comments + stmt.excluded.comments},
        )
    )
