"""What a run of interaction events comes to, worked out in memory before anything is
written, so that a batch costs a few statements however many events it holds.

Likes and collection entries are sets: whatever a run does to one member, only its last
word counts (added or removed), and the store turns that into a count change by what it
actually inserted or deleted. So a repeated like, or an unlike of what was never liked,
moves nothing, and no count can fall below the size of its set, which is never negative.
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


@dataclass
class Fold:
    """The last word per like and per collection entry, and the reads in order."""

    likes: dict[Like, tuple[bool, datetime]] = field(default_factory=dict)
    entries: dict[Entry, tuple[bool, str, datetime]] = field(default_factory=dict)
    reads: dict[ReadKey, list[datetime]] = field(default_factory=dict)

    def add(self, ev: InteractionEvent, at: datetime) -> None:
        # Exact types, not class patterns: an event model's isinstance goes through
        # ABCMeta (pydantic's metaclass), and this runs for every event of a batch.
        if type(ev) is ArticleLiked or type(ev) is ArticleUnliked:
            self.likes[(ev.article_id, ev.user_id)] = (type(ev) is ArticleLiked, at)
        elif type(ev) is ArticleCollected or type(ev) is ArticleUncollected:
            kept = type(ev) is ArticleCollected
            self.entries[(ev.collection_id, ev.article_id)] = (kept, ev.user_id, at)
        elif type(ev) is ArticleRead and ev.reader != ev.author_id:
            self.reads.setdefault((ev.article_id, ev.reader), []).append(at)

    def liked(self) -> list[tuple[str, str, datetime]]:
        return sorted((a, u, at) for (a, u), (on, at) in self.likes.items() if on)

    def unliked(self) -> list[Like]:
        return sorted(k for k, (on, _) in self.likes.items() if not on)

    def collected(self) -> list[tuple[str, str, str, datetime]]:
        return sorted((c, a, u, at) for (c, a), (on, u, at) in self.entries.items() if on)

    def uncollected(self) -> list[Entry]:
        return sorted(k for k, (on, _, _) in self.entries.items() if not on)


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
