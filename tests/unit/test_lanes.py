"""Lanes: each partition has one lane, fixed by its name, and a topic's partitions spread
over all lanes."""

from __future__ import annotations

from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from bloghub.projections.runner_config import lane_of


@given(
    topic=st.text(min_size=1, max_size=60),
    partition=st.integers(min_value=0, max_value=10_000),
    lanes=st.integers(min_value=1, max_value=16),
)
def test_a_partition_always_gets_the_same_lane_within_range(
    topic: str, partition: int, lanes: int
) -> None:
    tp = TopicPartition(topic, partition)
    lane = lane_of(tp, lanes)
    assert 0 <= lane < lanes
    assert lane_of(TopicPartition(topic, partition), lanes) == lane


@given(topic=st.text(min_size=1, max_size=60), lanes=st.integers(min_value=1, max_value=6))
def test_consecutive_partitions_fill_every_lane(topic: str, lanes: int) -> None:
    used = {lane_of(TopicPartition(topic, p), lanes) for p in range(6)}
    assert used == set(range(lanes))


@given(
    topic=st.text(min_size=1, max_size=60),
    processes=st.integers(min_value=1, max_value=4),
    lanes=st.integers(min_value=1, max_value=4),
    rounds=st.integers(min_value=1, max_value=3),
)
def test_each_process_of_a_group_fills_every_lane(
    topic: str, processes: int, lanes: int, rounds: int
) -> None:
    # Round-robin over the sorted partitions (aiokafka's default assignor) gives each of
    # the group's processes every `processes`-th one: 0, 2, 4 and 1, 3, 5 for two. Counted
    # by the partition, those had one parity, and two lanes left one idle in each process.
    partitions = processes * lanes * rounds
    for member in range(processes):
        mine = range(member, partitions, processes)
        used = {lane_of(TopicPartition(topic, p), lanes, processes) for p in mine}
        assert used == set(range(lanes))
