"""What a run of interaction events comes to, worked out in memory before anything is
written, so that a batch costs a few statements however many events it holds.

Likes and collection entries are sets: whatever a run does to one member, only its last
word counts (added or removed), and the store turns that into a count change by what it
actually inserted or deleted. So a repeated like, or an unlike of what was never liked,
moves nothing, and no count can fall below the size of its set, which is never negative.

A member keeps the time it was added at: a repeated like leaves the first like's time, as
applying the events one by one would (the insert of one already there does nothing). A
member removed and added again within the run is replaced (deleted, then inserted with
the time of the add after the removal), whatever the store held before: so the rows, times
included, are the same however the log is cut into batches, and a replay equals live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bloghub.events.interactions import (
    ArticleCollected,
    ArticleLiked,
    ArticleRead,
    ArticleUncollected,
    ArticleUnliked,
    InteractionEvent,
)

READ_WINDOW = timedelta(hours=1)
# A mark older than the window cannot stop a read from counting; it is kept a day longer,
# so reads that reach the log out of time order (clocks of API processes apart) still
# find it, and then dropped (see ``marks_expire_before``).
MARK_KEPT = READ_WINDOW + timedelta(days=1)

Like = tuple[str, str]  # article, user
Entry = tuple[str, str]  # collection, article
ReadKey = tuple[str, str]  # article, reader
Key = tuple[str, str]


@dataclass(slots=True)
class Word:
    """What a run comes to for one member: in the set or not, since when (an add's time),
    and whether the run removed it first (so it is deleted before it is added again)."""

    on: bool
    at: datetime
    removed: bool


def _said(words: dict[Key, Word], key: Key, on: bool, at: datetime) -> None:
    word = words.get(key)
    if word is None:
        words[key] = Word(on, at, not on)
    elif on and not word.on:
        word.on, word.at = True, at  # added again after a removal: since now
    elif not on:
        word.on, word.removed = False, True
    # an add of what the run has already added changes nothing, its time included


@dataclass
class Fold:
    """The last word per like and per collection entry, and the reads in order."""

    likes: dict[Like, Word] = field(default_factory=dict)
    entries: dict[Entry, Word] = field(default_factory=dict)
    collector: dict[Entry, str] = field(default_factory=dict)  # who owns the collection
    reads: dict[ReadKey, list[datetime]] = field(default_factory=dict)

    def add(self, ev: InteractionEvent, at: datetime) -> None:
        # Exact types, not class patterns: an event model's isinstance goes through
        # ABCMeta (pydantic's metaclass), and this runs for every event of a batch.
        if type(ev) is ArticleLiked or type(ev) is ArticleUnliked:
            _said(self.likes, (ev.article_id, ev.user_id), type(ev) is ArticleLiked, at)
        elif type(ev) is ArticleCollected or type(ev) is ArticleUncollected:
            key = (ev.collection_id, ev.article_id)
            _said(self.entries, key, type(ev) is ArticleCollected, at)
            self.collector[key] = ev.user_id
        elif type(ev) is ArticleRead and ev.reader != ev.author_id:
            self.reads.setdefault((ev.article_id, ev.reader), []).append(at)

    def liked(self) -> list[tuple[str, str, datetime]]:
        """The likes to insert (after ``unliked`` is deleted)."""
        return sorted((a, u, w.at) for (a, u), w in self.likes.items() if w.on)

    def unliked(self) -> list[Like]:
        """The likes to delete: those the run ends without, and those it removed and
        added again (inserted anew by ``liked``)."""
        return sorted(k for k, w in self.likes.items() if w.removed)

    def collected(self) -> list[tuple[str, str, str, datetime]]:
        return sorted(
            (c, a, self.collector[(c, a)], w.at) for (c, a), w in self.entries.items() if w.on
        )

    def uncollected(self) -> list[Entry]:
        return sorted(k for k, w in self.entries.items() if w.removed)


def count_reads(
    reads: Mapping[ReadKey, list[datetime]], last: Mapping[ReadKey, datetime]
) -> tuple[dict[str, int], dict[ReadKey, datetime]]:
    """Reads to count per article, and the new last counted read per reader: a read counts
    unless the reader's last counted read of the article is less than an hour before it."""
    counted: dict[str, int] = {}
    marks: dict[ReadKey, datetime] = {}
    for key, times in reads.items():
        mark = last.get(key)
        for at in times:
            if mark is None or at >= mark + READ_WINDOW:
                mark = at
                counted[key[0]] = counted.get(key[0], 0) + 1
                marks[key] = at
    return counted, marks


def net(changed: Mapping[str, int], by: int) -> dict[str, int]:
    """Count change per article from the rows a statement changed per article."""
    return {article_id: n * by for article_id, n in changed.items()}


def marks_expire_before(latest: datetime) -> datetime:
    """The time before which a partition's read marks can go, once a read of time
    ``latest`` (the log's time, not the clock's) has been applied from it: the start of
    its hour less ``MARK_KEPT``. Whole hours, so a live run and a replay, whose batches
    end at different events, drop the same marks."""
    return latest.replace(minute=0, second=0, microsecond=0) - MARK_KEPT
