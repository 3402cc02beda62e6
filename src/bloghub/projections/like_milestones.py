"""Like milestones: each article's likers and like count as the notifications projector
keeps them, and the milestones (1, 10, 100, 1,000…) a batch of likes and unlikes crosses.

A batch is applied in a few statements with the outcome of applying it one event at a
time: the likers and counts as stored are read once, each event is then applied in
memory in log order (so a milestone reached mid-batch is found, as it would be event by
event, and a replay in any batch split finds the same), and what changed is written
back. An article's events are all in one partition, whose checkpoint row the batch's
transaction holds: nothing else writes its rows meanwhile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, any_, bindparam, delete, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bloghub.adapters.postgres.bulk import unnest_source
from bloghub.adapters.postgres.tables import article_likers, like_milestones
from bloghub.events.base import Recorded
from bloghub.events.interactions import ArticleLiked, ArticleUnliked


def is_milestone(likes: int) -> bool:
    """1, 10, 100, 1,000…"""
    while likes >= 10 and likes % 10 == 0:
        likes //= 10
    return likes == 1


def milestone_reached(likes: int) -> int:
    """The highest milestone at or below ``likes`` (0 below the first)."""
    return 0 if likes < 1 else 10 ** (len(str(likes)) - 1)


@dataclass(frozen=True, slots=True)
class Crossed:
    """A milestone a like crossed, to be told to the article's author."""

    likes: int
    event: ArticleLiked
    record: Recorded


async def apply(conn: AsyncConnection, records: Sequence[Recorded]) -> list[Crossed]:
    """Apply the records' likes and unlikes; the milestones they reached for the first
    time, each by a like of someone other than the author. The author's own like counts
    but tells nobody (no one is told of their own act), and leaves the milestone it
    reached to the next like of someone else: it used to take it for good, so an author
    who liked their article first never heard of its first like."""
    events = [(r, r.event) for r in records if isinstance(r.event, ArticleLiked | ArticleUnliked)]
    if not events:
        return []
    pairs = sorted({(ev.article_id, ev.user_id) for _, ev in events})
    stored = await _likers(conn, pairs)
    counts = await _milestones(conn, sorted({a for a, _ in pairs}))
    before = dict(counts)
    member = {p: p in stored for p in pairs}
    crossed: list[Crossed] = []
    for rec, ev in events:
        pair, on = (ev.article_id, ev.user_id), isinstance(ev, ArticleLiked)
        if member[pair] == on:
            continue  # a like already counted, or an unlike of what is not liked
        member[pair] = on
        likes, notified = counts.get(ev.article_id, (0, 0))
        likes += 1 if on else -1
        reached = milestone_reached(likes)
        if isinstance(ev, ArticleLiked) and reached > notified and ev.user_id != ev.author_id:
            notified = reached  # an unlike and a re-like never reach one twice
            crossed.append(Crossed(reached, ev, rec))
        counts[ev.article_id] = (likes, notified)
    await _write_likers(
        conn,
        added=[p for p in pairs if member[p] and p not in stored],
        removed=[p for p in pairs if not member[p] and p in stored],
    )
    await _write_milestones(conn, {a: c for a, c in counts.items() if before.get(a) != c})
    return crossed


_ID = UUID(as_uuid=False)
_pairs = unnest_source({"a": _ID, "u": _ID})
_counts = unnest_source({"a": _ID, "n": BigInteger(), "m": BigInteger()})

# Built once: every batch of likes runs them, and a statement built afresh costs its
# construction and its cache key each time (the schema is translated at execution).
_k, _m = article_likers.c, like_milestones.c
_IN_PAIRS = tuple_(_k.article_id, _k.user_id).in_(select(_pairs.c.a, _pairs.c.u))
_LIKERS = select(_k.article_id, _k.user_id).where(_IN_PAIRS)
_MILESTONES = select(_m.article_id, _m.likes, _m.notified).where(
    _m.article_id == any_(bindparam("ids", type_=ARRAY(_ID)))
)
_ADD_LIKERS = (
    insert(article_likers)
    .from_select(["article_id", "user_id"], select(_pairs.c.a, _pairs.c.u))
    .on_conflict_do_nothing()
)
_REMOVE_LIKERS = delete(article_likers).where(_IN_PAIRS)
_new_counts = insert(like_milestones).from_select(
    ["article_id", "likes", "notified"], select(_counts.c.a, _counts.c.n, _counts.c.m)
)
_SAVE_MILESTONES = _new_counts.on_conflict_do_update(
    index_elements=[_m.article_id],
    set_={"likes": _new_counts.excluded.likes, "notified": _new_counts.excluded.notified},
)


def _pair_args(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    return {"a": [a for a, _ in pairs], "u": [u for _, u in pairs]}


async def _likers(conn: AsyncConnection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the (article, user) pairs are stored likers."""
    found = await conn.execute(_LIKERS, _pair_args(pairs))
    return {(str(a), str(u)) for a, u in found}


async def _milestones(conn: AsyncConnection, articles: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each article's stored like count and the last milestone notified."""
    found = await conn.execute(_MILESTONES, {"ids": list(articles)})
    return {str(a): (likes, notified) for a, likes, notified in found}


async def _write_likers(
    conn: AsyncConnection, *, added: Sequence[tuple[str, str]], removed: Sequence[tuple[str, str]]
) -> None:
    if added:
        await conn.execute(_ADD_LIKERS, _pair_args(added))
    if removed:
        await conn.execute(_REMOVE_LIKERS, _pair_args(removed))


async def _write_milestones(conn: AsyncConnection, counts: Mapping[str, tuple[int, int]]) -> None:
    if not counts:
        return
    items = sorted(counts.items())
    await conn.execute(
        _SAVE_MILESTONES,
        {
            "a": [a for a, _ in items],
            "n": [c[0] for _, c in items],
            "m": [c[1] for _, c in items],
        },
    )
