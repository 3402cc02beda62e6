"""Published articles per tag, kept by increments.

The articles projector notes, for each article a batch changes, the tags it was published
with before and after; the net change per tag is written once per batch. Counts follow the
article rows in the same transaction, so they are exactly as right as those rows: an event
the rows ignore (already applied, or older than the row) moves no count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import ARRAY, Integer, Text, any_, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.tables import tag_counts


class TagTally:
    """The net change a batch makes to the number of published articles per tag."""

    def __init__(self) -> None:
        self._net: Counter[str] = Counter()

    def moved(self, before: Iterable[str], after: Iterable[str]) -> None:
        """An article published under ``before`` is now published under ``after``
        (either may be empty: not published)."""
        self._net.update(after)
        self._net.subtract(before)

    def changes(self) -> list[tuple[str, int]]:
        """Non-zero changes in tag order: every writer takes the row locks in that order,
        so two batches that share tags wait for each other instead of deadlocking."""
        return sorted((tag, n) for tag, n in self._net.items() if n)


async def write_tally(conn: AsyncConnection, tally: TagTally) -> None:
    """Add the batch's changes to the counts (one statement however many events and
    tags), then drop the tags no published article has any more."""
    changes = tally.changes()
    if not changes:
        return
    pairs = (
        func.unnest(
            bindparam("tags", [t for t, _ in changes], type_=ARRAY(Text)),
            bindparam("deltas", [n for _, n in changes], type_=ARRAY(Integer)),
        )
        .table_valued("tag", "n", with_ordinality="i")
        .render_derived("changes")
    )
    stmt = insert(tag_counts).from_select(
        ["tag", "articles"], select(pairs.c.tag, pairs.c.n).order_by(pairs.c.i)
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[tag_counts.c.tag],
            set_={"articles": tag_counts.c.articles + stmt.excluded.articles},
        )
    )
    fallen = [t for t, n in changes if n < 0]
    if fallen:
        # Rows this transaction already holds: the delete takes no new lock.
        await conn.execute(
            delete(tag_counts).where(
                tag_counts.c.tag == any_(bindparam("fallen", fallen, type_=ARRAY(Text))),
                tag_counts.c.articles == 0,
            )
        )
