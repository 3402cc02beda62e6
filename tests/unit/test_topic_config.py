"""Event topics refuse a write that fewer than a majority of their replicas hold."""

from __future__ import annotations

import pytest

from bloghub.adapters.kafka import min_insync_replicas, new_topics, topic_config


@pytest.mark.parametrize(("replication", "insync"), [(1, 1), (2, 2), (3, 2), (5, 3)])
def test_min_insync_replicas_is_a_majority_of_the_replicas(replication: int, insync: int) -> None:
    assert min_insync_replicas(replication) == insync
    assert topic_config(replication)["min.insync.replicas"] == str(insync)


def test_topics_created_with_three_replicas_need_two_in_sync() -> None:
    created = new_topics(["p.users", "p.articles"], partitions=6, replication=3)
    for topic in created:
        assert topic.replication_factor == 3
        assert topic.topic_configs["min.insync.replicas"] == "2"
        assert topic.topic_configs["retention.ms"] == "-1"  # the log keeps everything
