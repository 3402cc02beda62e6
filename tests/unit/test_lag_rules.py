from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bloghub.ops.lag import GroupLag, PartitionLag, partition_lag

offsets = st.integers(0, 2**62)
stamps = st.none() | st.integers(-1, 2**45)


@given(offsets, offsets, st.none() | offsets, stamps, st.integers(0, 2**45))
def test_lag_is_never_negative_and_zero_lag_has_zero_age(
    a: int, b: int, committed: int | None, oldest: int | None, now: int
) -> None:
    log_start, end = min(a, b), max(a, b)
    fig = partition_lag(
        end_offset=end,
        log_start=log_start,
        committed=committed,
        oldest_timestamp_ms=oldest,
        now_ms=now,
    )
    assert fig.lag >= 0
    assert fig.lag_seconds is None or fig.lag_seconds >= 0
    assert fig.position >= log_start
    if fig.lag == 0:
        assert fig.lag_seconds == 0.0
    else:
        assert fig.lag == end - fig.position


@given(offsets, offsets, offsets)
def test_a_commit_below_the_floor_counts_from_the_floor(a: int, b: int, c: int) -> None:
    committed, log_start, end = sorted((a, b, c))
    fig = partition_lag(
        end_offset=end, log_start=log_start, committed=committed, oldest_timestamp_ms=0, now_ms=0
    )
    assert fig.position == log_start
    assert fig.lag == end - log_start


def test_never_committed_counts_from_log_start() -> None:
    fig = partition_lag(
        end_offset=10, log_start=4, committed=None, oldest_timestamp_ms=1_000, now_ms=61_000
    )
    assert fig == (4, 6, 60.0)


def test_an_unreadable_oldest_record_gives_no_age_rather_than_a_guess() -> None:
    fig = partition_lag(
        end_offset=10, log_start=0, committed=3, oldest_timestamp_ms=None, now_ms=5_000
    )
    assert (fig.lag, fig.lag_seconds) == (7, None)


def test_a_producer_clock_ahead_of_ours_is_not_negative_lag() -> None:
    fig = partition_lag(
        end_offset=2, log_start=0, committed=1, oldest_timestamp_ms=9_000, now_ms=5_000
    )
    assert (fig.lag, fig.lag_seconds) == (1, 0.0)


def part(lag: int, seconds: float | None) -> PartitionLag:
    return PartitionLag("t", 0, lag, 0, 0, lag, seconds)


def test_group_lag_sums_messages_and_keeps_the_oldest_known_age() -> None:
    group = GroupLag.of("g", [part(2, 60.0), part(0, 0.0), part(5, None), part(1, 12.5)])
    assert (group.lag, group.lag_seconds) == (8, 60.0)
    assert GroupLag.of("g", [part(3, None)]).lag_seconds is None
    assert GroupLag.of("g", [part(0, 0.0)]).lag_seconds == 0.0
    assert group.to_json()["partitions"] == [p.to_json() for p in group.partitions]
