from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.events.position import MAX_ENTRIES, BadPosition, Position, PositionSigner

topics = st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-_0123456789", min_size=1, max_size=30)
offsets = st.dictionaries(
    st.tuples(topics, st.integers(0, 1000)), st.integers(0, 2**62), max_size=20
)


@given(offsets)
def test_token_round_trips(raw: dict[tuple[str, int], int]) -> None:
    assert Position.decode(Position(raw).encode()) == Position(raw)


@given(offsets, offsets)
def test_merge_keeps_the_furthest_offset(
    a: dict[tuple[str, int], int], b: dict[tuple[str, int], int]
) -> None:
    merged = Position(a).merge(Position(b))
    for tp in set(a) | set(b):
        assert merged.offsets[tp] == max(a.get(tp, -1), b.get(tp, -1))


@pytest.mark.parametrize("token", ["!!!", "a" * 9000, "dGhpcyBpcyBub3Q", "eHx5fHo", "eHwtMXwz"])
def test_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadPosition):
        Position.decode(token)


def test_a_token_naming_too_many_partitions_says_so() -> None:
    most = Position({("a.users", p): 1 for p in range(MAX_ENTRIES)})
    assert Position.decode(most.encode()) == most
    over = Position({("a.users", p): 1 for p in range(MAX_ENTRIES + 1)})
    with pytest.raises(BadPosition, match="names too many partitions"):
        Position.decode(over.encode())


def test_restricted_to_drops_other_topics() -> None:
    pos = Position({("a.users", 0): 3, ("a.articles", 1): 5})
    assert pos.restricted_to(["a.users"]) == Position({("a.users", 0): 3})


@given(offsets)
def test_a_sealed_token_opens_to_its_position(raw: dict[tuple[str, int], int]) -> None:
    signer = PositionSigner("k" * 40)
    assert signer.open(signer.seal(Position(raw))) == Position(raw)


def test_only_tokens_sealed_with_this_key_open() -> None:
    signer, position = PositionSigner("k" * 40), Position({("a.users", 0): 3})
    sealed = signer.seal(position)
    payload, _, mac = sealed.partition(".")
    bigger = Position({("a.users", 0): 10**9}).encode()
    for token in (
        position.encode(),  # unsigned
        f"{bigger}.{mac}",  # another position under this one's seal
        PositionSigner("x" * 40).seal(position),  # another deployment's key
        f"{payload}.",
        "." * 3,
    ):
        with pytest.raises(BadPosition):
            signer.open(token)
