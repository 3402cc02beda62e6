"""The hot score and the bounded heap: the heap keeps exactly the top N a full sort gives,
ties going to the smaller id; the score counts hours from the publish event's time."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bloghub.ranking.score import Candidate, Weights, score, top

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
W = Weights(collect=2.0, gravity=1.5)


def candidate(i: int, hours: float, likes: int, collects: int) -> Candidate:
    return Candidate(
        article_id=f"{i:08d}-0000-0000-0000-000000000000",
        author_id="a",
        published_at=NOW - timedelta(hours=hours),
        reads=0,
        likes=likes,
        collects=collects,
    )


# Few distinct ages and counts, so equal scores (the ties) are common.
candidates = st.lists(
    st.tuples(st.sampled_from([0, 1, 2.5, 24, 100]), st.integers(0, 5), st.integers(0, 3)),
    max_size=300,
).map(lambda rows: [candidate(i, *row) for i, row in enumerate(rows)])


# No deadline: an example's duration is a timing, not what this test asserts (and the
# machine running it may be busy).
@settings(deadline=None)
@given(candidates, st.integers(1, 120), st.randoms())
def test_the_heap_holds_exactly_the_top_n_of_a_full_sort(
    items: list[Candidate], n: int, rng: random.Random
) -> None:
    shuffled = list(items)
    rng.shuffle(shuffled)
    expected = sorted(shuffled, key=lambda c: (-score(c, NOW, W), c.article_id))[:n]
    got = top(shuffled, n, NOW, W)
    assert [r.candidate.article_id for r in got] == [c.article_id for c in expected]
    assert [r.score for r in got] == [score(c, NOW, W) for c in expected]


def test_ties_go_to_the_smaller_id_whatever_the_order_met() -> None:
    same = [candidate(i, 3, 4, 1) for i in (5, 2, 9, 1, 7)]
    assert [r.candidate.article_id[:8] for r in top(same, 3, NOW, W)] == [
        "00000001",
        "00000002",
        "00000005",
    ]


@given(st.floats(0, 24 * 7), st.integers(0, 10_000), st.integers(0, 10_000))
def test_the_score_counts_hours_from_the_publish_event(
    hours: float, likes: int, collects: int
) -> None:
    c = candidate(1, hours, likes, collects)
    expected = (likes + collects * 2.0 - 1) / (hours + 2) ** 1.5
    assert abs(score(c, NOW, W) - expected) <= 1e-9 * max(1.0, abs(expected))


def test_an_older_publish_scores_lower_with_the_same_counts() -> None:
    assert score(candidate(1, 1, 10, 0), NOW, W) > score(candidate(2, 30, 10, 0), NOW, W)


def test_a_publish_time_ahead_of_the_clock_counts_as_now() -> None:
    ahead = candidate(1, -2, 10, 0)  # another machine's clock ran ahead
    assert score(ahead, NOW, W) == score(candidate(2, 0, 10, 0), NOW, W)
