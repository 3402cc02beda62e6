"""The statements of the interactions projector: each writes a whole batch's worth of one
kind of change (arrays bound once, ``unnest``), so 1,000 likes of one article are one
insert and one counter update."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    SmallInteger,
    Text,
    any_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import HasCTE, Select

from bloghub.adapters.postgres.bulk import (
    MICROS,
    Packed,
    column_params,
    from_micros,
    micros,
    unnest_source,
)
from bloghub.adapters.postgres.tables import (
    article_stats,
    article_versions,
    collection_items,
    collections,
    likes,
    read_marks,
)
from bloghub.adapters.redis.counters import Counts, Tally
from bloghub.events.articles import (
    ArticleDeleted,
    ArticleEvent,
    ArticlePublished,
    ArticleWithdrawn,
)
from bloghub.events.interactions import CollectionCreated
from bloghub.projections.interaction_fold import Entry, Like, ReadKey

_ID = UUID(as_uuid=False)
# What a batch binds once per event (likes, collection entries) goes packed (see bulk.py).
_IDS = Packed(_ID)
_AT = DateTime(timezone=True)
s = article_stats.c


async def apply_visibility(conn: AsyncConnection, ev: ArticleEvent, at: datetime) -> None:
    """Publish shows an article's counts; withdraw and delete hide and freeze them. An
    event older than the version the row reflects changes nothing."""
    newer = await conn.execute(_NEWER_VERSION, {"a": ev.article_id, "v": ev.version})
    if newer.first() is None:
        return
    if isinstance(ev, ArticlePublished):
        params = {"a": ev.article_id, "au": ev.author_id, "at": at}
        await conn.execute(_SHOWN, params)
    elif isinstance(ev, ArticleWithdrawn | ArticleDeleted):
        await conn.execute(_HIDDEN, {"a": ev.article_id})


# Built once: every article event of a replay passes here (statements built per event
# cost more in SQLAlchemy than in the database).
_v = article_versions.c
_versioned = insert(article_versions).values(
    article_id=bindparam("a", type_=_ID), version=bindparam("v", type_=_v.version.type)
)
_NEWER_VERSION = _versioned.on_conflict_do_update(
    index_elements=[_v.article_id],
    set_={"version": _versioned.excluded.version},
    where=_v.version < _versioned.excluded.version,
).returning(_v.article_id)
_shown = insert(article_stats).values(
    article_id=bindparam("a", type_=_ID),
    author_id=bindparam("au", type_=_ID),
    published_at=bindparam("at", type_=_AT),
    visible=True,
)
# The first publish's time: a row made by a like seen first carries a later time.
_SHOWN = _shown.on_conflict_do_update(
    index_elements=[s.article_id],
    set_={
        "visible": True,
        "published_at": func.least(s.published_at, _shown.excluded.published_at),
    },
)
_HIDDEN = (
    update(article_stats).where(s.article_id == bindparam("a", type_=_ID)).values(visible=False)
)


_claims = unnest_source({"a": _ID, "au": _ID, "at": _AT, "make": Boolean()})


async def claim_counts(
    conn: AsyncConnection, claims: Mapping[str, tuple[str, datetime, bool]]
) -> None:
    """Lock the counter rows of the articles ``claims`` names, in id order, creating those
    marked to be made (author, time first seen; not shown) that do not exist yet: one pass
    in one order over new and existing rows alike. (Locking only the rows that existed,
    then inserting the rest, took rows out of order: the other lane's counts statement,
    inserting and locking in id order, then deadlocked with this one.) An article not to
    be made that has no row is skipped: nothing else writes it either."""
    if not claims:
        return
    items = sorted(claims.items())
    stmt = insert(article_stats).from_select(
        ["article_id", "author_id", "published_at", "visible"],
        select(_claims.c.a, _claims.c.au, _claims.c.at, false()).where(
            or_(_claims.c.make, exists().where(s.article_id == _claims.c.a))
        ),
    )
    # A conflict's row is locked even where the update's condition excludes it.
    upsert = stmt.on_conflict_do_update(
        index_elements=[s.article_id], set_={"visible": s.visible}, where=false()
    )
    params = {
        "a": [a for a, _ in items],
        "au": [c[0] for _, c in items],
        "at": [c[1] for _, c in items],
        "make": [c[2] for _, c in items],
    }
    await conn.execute(upsert, params)


async def create_collections(
    conn: AsyncConnection, made: Sequence[tuple[CollectionCreated, datetime]]
) -> None:
    if made:
        rows = [
            {"id": e.collection_id, "owner_id": e.owner_id, "name": e.name, "created_at": at}
            for e, at in made
        ]
        await conn.execute(insert(collections).values(rows).on_conflict_do_nothing())


_pairs = unnest_source({"a": _IDS, "b": _IDS})


_liked = unnest_source({"a": _IDS, "u": _IDS, "at": MICROS})

# The batch statements below are built once too: a batch of the live stream holds a few
# events, and building a statement costs its construction and cache key each time.
_ADD_LIKES = (
    insert(likes)
    .from_select(
        ["article_id", "user_id", "liked_at"],
        select(_liked.c.a, _liked.c.u, from_micros(_liked.c.at)),
    )
    .on_conflict_do_nothing()
    .returning(likes.c.article_id)
)
_REMOVE_LIKES = (
    likes.delete()
    .where(tuple_(likes.c.article_id, likes.c.user_id).in_(select(_pairs.c.a, _pairs.c.b)))
    .returning(likes.c.article_id)
)


def _per_article(changing: HasCTE) -> Select[str, int]:
    """``changing`` (a statement returning the article of each row it changed) as a count
    of changed rows per article: PostgreSQL adds them up, so a batch of 2,000 likes of 200
    articles comes back as 200 rows instead of 2,000 for Python to count."""
    changed = changing.cte("changed")
    return select(changed.c.article_id, func.count()).group_by(changed.c.article_id)


_ADDED_LIKES = _per_article(_ADD_LIKES)
_REMOVED_LIKES = _per_article(_REMOVE_LIKES)


async def _counted(
    conn: AsyncConnection, statement: Select[str, int], params: dict[str, list[Any]]
) -> dict[str, int]:
    return {str(a): n for a, n in await conn.execute(statement, params)}


async def add_likes(
    conn: AsyncConnection, rows: Sequence[tuple[str, str, datetime]]
) -> dict[str, int]:
    """Insert the likes not there yet; how many were inserted, per article."""
    if not rows:
        return {}
    params = column_params(("a", "u", "at"), rows)
    params["at"] = micros(params["at"])
    return await _counted(conn, _ADDED_LIKES, params)


async def remove_likes(conn: AsyncConnection, pairs: Sequence[Like]) -> dict[str, int]:
    """Delete the likes there; how many were deleted, per article."""
    if not pairs:
        return {}
    return await _counted(conn, _REMOVED_LIKES, column_params(("a", "b"), pairs))


_entries = unnest_source({"c": _IDS, "a": _IDS, "u": _IDS, "at": MICROS})
_i = collection_items.c
_ADD_ENTRIES = (
    insert(collection_items)
    .from_select(
        ["collection_id", "article_id", "user_id", "added_at"],
        select(_entries.c.c, _entries.c.a, _entries.c.u, from_micros(_entries.c.at)),
    )
    .on_conflict_do_nothing()
    .returning(_i.article_id, _i.user_id)
)
_REMOVE_ENTRIES = (
    collection_items.delete()
    .where(tuple_(_i.collection_id, _i.article_id).in_(select(_pairs.c.a, _pairs.c.b)))
    .returning(_i.article_id, _i.user_id)
)
_HELD = (
    select(_i.article_id, _i.user_id, func.count())
    .where(tuple_(_i.article_id, _i.user_id).in_(select(_pairs.c.a, _pairs.c.b)))
    .group_by(_i.article_id, _i.user_id)
)

Collector = tuple[str, str]  # article, user


async def add_entries(
    conn: AsyncConnection, rows: Sequence[tuple[str, str, str, datetime]]
) -> Counter[Collector]:
    """Put the articles in the collections not holding them yet; the entries made, per
    article and user."""
    if not rows:
        return Counter()
    params = column_params(("c", "a", "u", "at"), rows)
    params["at"] = micros(params["at"])
    return Counter((str(a), str(u)) for a, u in await conn.execute(_ADD_ENTRIES, params))


async def remove_entries(conn: AsyncConnection, pairs: Sequence[Entry]) -> Counter[Collector]:
    """Take the articles out of the collections holding them; the entries removed, per
    article and user."""
    if not pairs:
        return Counter()
    return Counter(
        (str(a), str(u))
        for a, u in await conn.execute(_REMOVE_ENTRIES, column_params(("a", "b"), pairs))
    )


async def collectors_moved(
    conn: AsyncConnection, made: Counter[Collector], removed: Counter[Collector]
) -> dict[str, int]:
    """The change in each article's collectors (users holding it in at least one of their
    collections) that entries just made and removed come to. An article is counted once
    per user however many of their collections hold it, so a user cannot raise its count
    (and its rank) by putting it in collection after collection."""
    touched = sorted(made.keys() | removed.keys())
    if not touched:
        return {}
    held = {
        (str(a), str(u)): int(n)
        for a, u, n in await conn.execute(_HELD, column_params(("a", "b"), touched))
    }
    moved: dict[str, int] = {}
    for key in touched:
        now = held.get(key, 0)
        before = now - made[key] + removed[key]
        step = (now > 0) - (before > 0)
        if step:
            moved[key[0]] = moved.get(key[0], 0) + step
    return moved


_readers = unnest_source({"a": _ID, "r": Text()})
_rm = read_marks.c
_LAST_COUNTED = select(_rm.article_id, _rm.reader, _rm.counted_at).where(
    tuple_(_rm.article_id, _rm.reader).in_(select(_readers.c.a, _readers.c.r))
)


async def last_counted(conn: AsyncConnection, keys: Sequence[ReadKey]) -> dict[ReadKey, datetime]:
    if not keys:
        return {}
    params = {"a": [k[0] for k in keys], "r": [k[1] for k in keys]}
    rows = await conn.execute(_LAST_COUNTED, params)
    return {(str(r.article_id), r.reader): r.counted_at for r in rows}


_marks = unnest_source({"a": _ID, "r": Text(), "at": _AT, "p": SmallInteger()})
_new_marks = insert(read_marks).from_select(
    ["article_id", "reader", "counted_at", "part"],
    select(_marks.c.a, _marks.c.r, _marks.c.at, _marks.c.p),
)
_SAVE_MARKS = _new_marks.on_conflict_do_update(
    index_elements=[_rm.article_id, _rm.reader],
    set_={"counted_at": _new_marks.excluded.counted_at, "part": _new_marks.excluded.part},
)
_PRUNE_MARKS = read_marks.delete().where(
    _rm.part == bindparam("p", type_=SmallInteger()), _rm.counted_at < bindparam("b", type_=_AT)
)


async def save_marks(
    conn: AsyncConnection, marks: Mapping[ReadKey, datetime], parts: Mapping[str, int]
) -> None:
    """Keep each reader's last counted read, with the partition its article's events are
    on (``parts``: article → partition), which ``prune_marks`` goes by."""
    if not marks:
        return
    items = sorted(marks.items())
    params = {
        "a": [k[0] for k, _ in items],
        "r": [k[1] for k, _ in items],
        "at": [t for _, t in items],
        "p": [parts[k[0]] for k, _ in items],
    }
    await conn.execute(_SAVE_MARKS, params)


async def prune_marks(conn: AsyncConnection, part: int, before: datetime) -> None:
    """Drop the marks of one partition's articles counted before ``before``. Only that
    partition's: the log's time of another may be far behind (another lane, or a replay
    that reads partitions at different speeds), and its marks still needed."""
    await conn.execute(_PRUNE_MARKS, {"p": part, "b": before})


_deltas = unnest_source(
    {"a": _ID, "au": _ID, "at": _AT, "r": BigInteger(), "l": BigInteger(), "c": BigInteger()}
)
_new_counts = insert(article_stats).from_select(
    ["article_id", "author_id", "published_at", "visible", "read_cnt", "like_cnt", "collect_cnt"],
    select(_deltas.c.a, _deltas.c.au, _deltas.c.at, false(), _deltas.c.r, _deltas.c.l, _deltas.c.c),
)
# No CHECK on the counts, so PostgreSQL never refuses the negative row it proposes before
# it finds the conflict; the counts themselves are set sizes, never negative.
_MOVE_COUNTS = _new_counts.on_conflict_do_update(
    index_elements=[s.article_id],
    set_={
        "read_cnt": s.read_cnt + _new_counts.excluded.read_cnt,
        "like_cnt": s.like_cnt + _new_counts.excluded.like_cnt,
        "collect_cnt": s.collect_cnt + _new_counts.excluded.collect_cnt,
    },
).returning(s.article_id, s.author_id, s.read_cnt, s.like_cnt, s.collect_cnt)


async def move_counts(
    conn: AsyncConnection, deltas: Mapping[str, Counts], seen: Mapping[str, tuple[str, datetime]]
) -> dict[str, Tally]:
    """Add each article's changes to its counters: one statement for the whole batch. An
    article with no row yet gets one (its author and the time first seen), not shown until
    its publish is applied: the articles and interactions families are read as separate
    partitions, so a like may be applied before the publish that preceded it. It counts
    all the same, and the result does not depend on that order (a replay equals live).
    Returns the counts it left, as this transaction will commit them (the rows stay
    locked until then), so the counter hashes need no second read."""
    items = sorted((a, d) for a, d in deltas.items() if d != Counts())
    if not items:
        return {}
    params = {
        "a": [a for a, _ in items],
        "au": [seen[a][0] for a, _ in items],
        "at": [seen[a][1] for a, _ in items],
        "r": [d.read_cnt for _, d in items],
        "l": [d.like_cnt for _, d in items],
        "c": [d.collect_cnt for _, d in items],
    }
    return _tallies(await conn.execute(_MOVE_COUNTS, params))


def _tallies(rows: Iterable[Any]) -> dict[str, Tally]:
    return {
        str(r.article_id): Tally(Counts(r.read_cnt, r.like_cnt, r.collect_cnt), str(r.author_id))
        for r in rows
    }


async def tallies(conn: AsyncConnection, article_ids: Iterable[str]) -> dict[str, Tally]:
    ids = sorted(set(article_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(s.article_id, s.author_id, s.read_cnt, s.like_cnt, s.collect_cnt).where(
            s.article_id == any_(bindparam("ids", ids, type_=ARRAY(_ID)))
        )
    )
    return _tallies(rows)
