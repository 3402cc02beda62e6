"""A batch's follow-count changes: net per user, none for a user whose moves cancel out,
and in user order (every batch locks count rows in the same order, so none deadlock)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bloghub.projections.social import FollowTally

USERS = ["a", "b", "c", "d"]
MOVES = st.lists(
    st.tuples(st.sampled_from(USERS), st.sampled_from(USERS), st.sampled_from([1, -1])),
    max_size=30,
)


@given(moves=MOVES)
def test_changes_are_the_net_moves_in_user_order(moves: list[tuple[str, str, int]]) -> None:
    tally = FollowTally()
    for follower, followee, by in moves:
        tally.moved(follower, followee, by)
    changes = tally.changes()
    assert [c["user_id"] for c in changes] == sorted({c["user_id"] for c in changes})
    for user in USERS:
        followers = sum(by for _, b, by in moves if b == user)
        followees = sum(by for a, _, by in moves if a == user)
        found = [c for c in changes if c["user_id"] == user]
        if followers or followees:
            assert found == [{"user_id": user, "followers": followers, "followees": followees}]
        else:
            assert found == []
