"""The hot score and the bounded selection of the best-scored articles (pure, no I/O)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Weights:
    collect: float
    gravity: float


@dataclass(frozen=True, slots=True)
class Candidate:
    """One visible article's counters, as the interactions read model holds them."""

    article_id: str
    author_id: str
    published_at: datetime
    reads: int
    likes: int
    collects: int


@dataclass(frozen=True, slots=True)
class Scored:
    candidate: Candidate
    score: float

    def __lt__(self, other: Scored) -> bool:
        """Worse first: a lower score, or on a tie the larger id (ties go to the smaller)."""
        if self.score != other.score:
            return self.score < other.score
        return self.candidate.article_id > other.candidate.article_id


def score(c: Candidate, now: datetime, w: Weights) -> float:
    """``(likes + collects * w - 1) / (hours + 2) ^ gravity``, the hours counted from the
    publish event's own time, so a replayed or late-projected article is not younger than
    it is. A publish time ahead of ``now`` (clock skew between machines) counts as now."""
    hours = max(0.0, (now - c.published_at).total_seconds() / 3600.0)
    return float((c.likes + c.collects * w.collect - 1) / (hours + 2) ** w.gravity)


class TopN:
    """The ``n`` best of a stream in O(n) memory: a min-heap whose root is the worst kept."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._heap: list[Scored] = []

    def offer(self, item: Scored) -> None:
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, item)
        elif self._heap[0] < item:
            heapq.heapreplace(self._heap, item)

    def best_first(self) -> list[Scored]:
        return sorted(self._heap, reverse=True)


def top(candidates: Iterable[Candidate], n: int, now: datetime, w: Weights) -> list[Scored]:
    kept = TopN(n)
    for c in candidates:
        kept.offer(Scored(c, score(c, now, w)))
    return kept.best_first()
