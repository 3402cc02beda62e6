"""Confirmations sent together go in rounds of distinct keys (one statement may update a
row only once), each round in key order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bloghub.adapters.postgres.reservations import Confirmation, distinct_rounds


def test_a_key_confirmed_twice_at_once_goes_in_a_second_round() -> None:
    a1 = ("slug", "a", "o1", "p1")
    a2 = ("slug", "a", "o1", "p2")
    b = ("slug", "b", "o2", "p3")
    assert distinct_rounds([b, a2, a1]) == [[a1, b], [a2]]


keys = st.tuples(
    st.sampled_from(["slug", "email"]),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["o1", "o2"]),
    st.sampled_from(["p1", "p2"]),
)


@given(st.lists(keys, max_size=30))
def test_rounds_hold_every_key_once_distinct_and_in_order(batch: list[Confirmation]) -> None:
    rounds = distinct_rounds(batch)
    assert sorted(k for r in rounds for k in r) == sorted(batch)
    for r in rounds:
        assert r == sorted(r)
        assert len({(k[0], k[1]) for k in r}) == len(r)
    # As few rounds as the most repeated key needs.
    most = max((sum(1 for k in batch if k[:2] == x[:2]) for x in batch), default=0)
    assert len(rounds) == most
