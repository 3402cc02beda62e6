"""The notifications projector's own comment trees (``comment_threads``): which comment
replies to which, and which are deleted, so that deleting a comment takes with it the
notifications about it and about every reply under it, at any depth, and a reply applied
after its parent's delete notifies no one. Comment events are keyed by article, so live
and a replay apply them in the same order and remove the same notifications."""

from __future__ import annotations

from sqlalchemy import bindparam, false, func, select, update
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import comment_threads, notifications
from bloghub.events.comments import CommentDeleted, CommentPosted
from bloghub.projections.removed_notifications import removing

_ID = UUID(as_uuid=False)


async def stands(conn: AsyncConnection, ev: CommentPosted) -> bool:
    """Record the comment in its thread; whether it stands. A reply to a comment deleted
    before it applied is dropped (a tombstone), as the comments projector drops it; a
    parent with no row is from before the threads were kept, and stands."""
    args = {"id": ev.comment_id, "article": ev.article_id, "parent": ev.parent_id}
    deleted = (await conn.execute(_THREAD, args)).scalar()
    if deleted is None:  # applied before: its row is there
        deleted = (await conn.execute(_THREAD_DELETED, {"id": ev.comment_id})).scalar()
    return not deleted


async def deleted(conn: AsyncConnection, ev: CommentDeleted) -> None:
    """The comment and its replies become tombstones, and their notifications go (read or
    not: the list and the unread count no longer show them). Read marks naming them stay,
    as they would had the mark come after the delete."""
    await conn.execute(_DELETE_THREAD, {"id": ev.comment_id})
    await conn.execute(_UNNOTIFY_THREAD, {"id": ev.comment_id})


_t = comment_threads.c
_parent_deleted = select(_t.deleted).where(_t.comment_id == bindparam("parent", type_=_ID))
_THREAD = (
    insert(comment_threads)
    .from_select(
        ["comment_id", "article_id", "parent_id", "deleted"],
        select(
            bindparam("id", type_=_ID),
            bindparam("article", type_=_ID),
            bindparam("parent", type_=_ID),
            func.coalesce(_parent_deleted.scalar_subquery(), false()),
        ),
    )
    .on_conflict_do_nothing(index_elements=[_t.comment_id])
    .returning(_t.deleted)
)
_THREAD_DELETED = select(_t.deleted).where(_t.comment_id == bindparam("id", type_=_ID))
# The deleted comment and every reply under it, at any depth, whether or not each notified
# anyone (a comment from before the threads were kept has no row, but its id starts it).
_subtree = select(bindparam("id", type_=_ID).label("id")).cte("subtree", recursive=True)
_subtree = _subtree.union_all(select(_t.comment_id).where(_t.parent_id == _subtree.c.id))
_DELETE_THREAD = (
    update(comment_threads).where(_t.comment_id.in_(select(_subtree.c.id))).values(deleted=True)
)
_UNNOTIFY_THREAD = removing(notifications.c.comment_id.in_(select(_subtree.c.id)))
