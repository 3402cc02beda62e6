"""The partition a key's records go to, as bloghub works it out to wait for one partition,
is the one the producer sends them to."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from bloghub.events.topics import KeyPartitioner, partition_of


@given(key=st.text(min_size=1, max_size=80), partitions=st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_the_producer_sends_it(key: str, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key.encode(), every, every)


@given(
    keys=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=30),
    partitions=st.integers(min_value=1, max_value=64),
    kept=st.integers(min_value=1, max_value=8),
)
def test_the_producers_partitioner_sends_each_key_where_the_default_would(
    keys: list[str], partitions: int, kept: int
) -> None:
    """Its kept hashes (few, so that they are cleared and refilled) never change where a
    key goes, whether it is asked for the first time or again."""
    partitioner = KeyPartitioner(kept=kept)
    every = list(range(partitions))
    for key in keys + keys[::-1]:
        raw = key.encode()
        assert partitioner(raw, every, every) == DefaultPartitioner()(raw, every, every)
        assert partitioner(raw, every, every) == partition_of(key, partitions)
