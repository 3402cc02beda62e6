"""The partition a key's records go to, as bloghub works it out to wait for one partition,
is the one the producer sends them to."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from bloghub.events.topics import partition_of


@given(key=st.text(min_size=1, max_size=80), partitions=st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_the_producer_sends_it(key: str, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key.encode(), every, every)
