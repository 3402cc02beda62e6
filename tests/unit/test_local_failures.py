"""The operator door's failure limit kept in the process while Redis cannot be asked."""

from __future__ import annotations

import pytest

from bloghub.auth.lockout import LocalFailures
from bloghub.errors import RateLimited
from tests.unit.test_local_limiter import Clock


def test_failures_past_the_threshold_lock_for_the_lock_time_then_open() -> None:
    clock = Clock()
    door = LocalFailures(threshold=3, window_s=60, lock_s=60, clock=clock)
    door.attempt("ip:1", "tries")
    assert [door.failed("ip:1") for _ in range(3)] == [0, 0, 60]
    with pytest.raises(RateLimited) as refused:
        door.attempt("ip:1", "tries")
    assert refused.value.retry_after_s == 60
    door.attempt("ip:2", "tries")  # another address is not locked
    clock.now += 59.5
    with pytest.raises(RateLimited):
        door.attempt("ip:1", "tries")
    clock.now += 1
    door.attempt("ip:1", "tries")


def test_failures_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    door = LocalFailures(threshold=3, window_s=60, lock_s=60, clock=clock)
    door.failed("ip:1")
    door.failed("ip:1")
    clock.now += 61
    assert door.failed("ip:1") == 0
    door.attempt("ip:1", "tries")


def test_right_tokens_never_lock() -> None:
    door = LocalFailures(threshold=2, window_s=60, lock_s=60, clock=Clock())
    for _ in range(100):
        door.attempt("ip:1", "tries")  # each succeeds: nothing counted


def test_memory_is_bounded_whatever_addresses_fail() -> None:
    door = LocalFailures(threshold=2, window_s=60, lock_s=60, max_subjects=10, clock=Clock())
    for i in range(1000):
        door.failed(f"ip:{i}")
        door.failed(f"ip:{i}")
    assert len(door._failures) <= 10
    assert len(door._locked) <= 10
    with pytest.raises(RateLimited):
        door.attempt("ip:999", "tries")  # the most recent stay locked
