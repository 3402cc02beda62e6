"""The comments projector: comment trees per article and the live comments per article.

Comment events are keyed by article, so a reply is applied after its parent and a delete
after what it deletes. A reply whose parent is gone by the time it applies (deleted in
between) is dropped, as its thread was: the tree never holds an orphan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, bindparam, delete, exists, select, update
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
        """Each post and delete in log order, on statements built once; what they change in
        the counts (an article's comments, a thread's replies) is added up and written once
        per batch, after them (nothing in the batch reads the counts)."""
        counted = _Counted()
        for rec in records:
            ev = rec.event
            if isinstance(ev, CommentPosted):
                await _posted(conn, ev, rec.envelope.occurred_at, counted)
            elif isinstance(ev, CommentDeleted):
                await _deleted(conn, ev, counted)
        await counted.write(conn)

    def stale_cache_keys(self, records: Sequence[Recorded]) -> set[str]:
        cache = self.cache
        if cache is None:
            return set()
        touched = {r.event.article_id for r in records if isinstance(r.event, CommentEvent)}
        return {article_counts_key(cache, a) for a in touched}


@dataclass
class _Counted:
    """What a batch's posts and deletes change in the counts, by article and by thread. An
    article any of them touched gets its row even if the changes add up to nothing, as it
    would have had the events come in batches of their own (replay equals live)."""

    comments: dict[str, int] = field(default_factory=dict)
    replies: dict[str, int] = field(default_factory=dict)

    def add(self, article_id: str, root_id: str | None, by: int) -> None:
        self.comments[article_id] = self.comments.get(article_id, 0) + by
        if root_id is not None:
            self.replies[root_id] = self.replies.get(root_id, 0) + by

    async def write(self, conn: AsyncConnection) -> None:
        replies = [{"b_root": r, "b_by": n} for r, n in self.replies.items() if n]
        if replies:
            await conn.execute(_REPLIES, replies)
        if self.comments:
            await conn.execute(
                _COUNTED, [{"article_id": a, "comments": n} for a, n in self.comments.items()]
            )


def _p(name: str) -> BindParameter[Any]:
    return bindparam(f"b_{name}", type_=c[name].type)


_ROW = ("id", "article_id", "article_author_id", "author_id", "parent_id", "root_id")
_COLUMNS = [*_ROW, "content", "created_at", "number"]
_values = select(*(_p(name).label(name) for name in _COLUMNS))
# A reply only while its parent is there (in the same article): no orphan in the tree.
_POSTED_TOP = (
    insert(comments).from_select(_COLUMNS, _values).on_conflict_do_nothing(index_elements=["id"])
)
_POSTED_REPLY = (
    insert(comments)
    .from_select(
        _COLUMNS,
        _values.where(exists().where(c.id == _p("parent_id"), c.article_id == _p("article_id"))),
    )
    .on_conflict_do_nothing(index_elements=["id"])
)
_subtree = select(c.id).where(c.id == _p("id")).cte("subtree", recursive=True)
_subtree = _subtree.union_all(select(c.id).where(c.parent_id == _subtree.c.id))
_DELETED = (
    delete(comments)
    .where(c.id.in_(select(_subtree.c.id)), c.article_id == _p("article_id"))
    .returning(c.id, c.root_id)
)
_REPLIES = (
    update(comments)
    .where(c.id == bindparam("b_root", type_=c.id.type))
    .values(replies=c.replies + bindparam("b_by", type_=c.replies.type))
)
_counts = insert(comment_counts)
_COUNTED = _counts.on_conflict_do_update(
    index_elements=["article_id"],
    set_={"comments": comment_counts.c.comments + _counts.excluded.comments},
)


async def _posted(
    conn: AsyncConnection, ev: CommentPosted, at: datetime, counted: _Counted
) -> None:
    row = {
        "b_id": ev.comment_id,
        "b_article_id": ev.article_id,
        "b_article_author_id": ev.article_author_id,
        "b_author_id": ev.author_id,
        "b_parent_id": ev.parent_id,
        "b_root_id": ev.root_id,
        "b_content": ev.content,
        "b_created_at": at,
        "b_number": ev.number,
    }
    done = await conn.execute(_POSTED_TOP if ev.parent_id is None else _POSTED_REPLY, row)
    if done.rowcount:  # not already applied, and its parent is there
        counted.add(ev.article_id, ev.root_id, 1)


async def _deleted(conn: AsyncConnection, ev: CommentDeleted, counted: _Counted) -> None:
    gone = list(
        await conn.execute(_DELETED, {"b_id": ev.comment_id, "b_article_id": ev.article_id})
    )
    if gone:
        top = next(r for r in gone if str(r.id) == ev.comment_id)
        counted.add(ev.article_id, None if top.root_id is None else str(top.root_id), -len(gone))
