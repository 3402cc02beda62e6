"""The in-process limiter that keeps anonymous reads off Redis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bloghub.auth.limiter import LocalLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_then_a_refusal_that_says_when_to_retry() -> None:
    clock = Clock()
    limiter = LocalLimiter(3, 60.0, clock=clock)
    answers = [limiter.allow("ip:1").allowed for _ in range(4)]
    assert answers == [True, True, True, False]
    refused = limiter.allow("ip:1")
    assert refused.retry_after_s == 20  # one token comes back every 60/3 s
    clock.now += 20
    assert limiter.allow("ip:1").allowed
    assert not limiter.allow("ip:1").allowed


def test_take_spends_from_the_same_bucket_as_allow_and_a_refusal_spends_nothing() -> None:
    clock = Clock()
    limiter = LocalLimiter(2, 60.0, clock=clock)
    assert limiter.take("ip:1")
    assert limiter.allow("ip:1").allowed
    assert not limiter.take("ip:1")
    refused = limiter.allow("ip:1")  # the stack's answer to the refusal: when to retry
    assert not refused.allowed
    assert refused.retry_after_s == 30
    clock.now += 30
    assert limiter.take("ip:1")
    assert not limiter.allow("ip:1").allowed


def test_keys_do_not_share_a_bucket() -> None:
    limiter = LocalLimiter(1, 60.0, clock=Clock())
    assert limiter.allow("ip:1").allowed
    assert not limiter.allow("ip:1").allowed
    assert limiter.allow("ip:2").allowed


def test_memory_is_bounded_by_forgetting_the_least_recent_key() -> None:
    limiter = LocalLimiter(1, 60.0, max_keys=2, clock=Clock())
    for key in ("ip:1", "ip:2"):
        limiter.allow(key)
    limiter.allow("ip:1")  # seen again: ip:2 is now the least recent
    limiter.allow("ip:3")
    assert limiter.allow("ip:2").allowed, "forgotten, so it starts with a full bucket"
    assert not limiter.allow("ip:3").allowed


@given(
    limit=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=300),
)
def test_never_more_than_the_limit_plus_what_time_gives_back(limit: int, gaps: list[float]) -> None:
    clock = Clock()
    window = 60.0
    limiter = LocalLimiter(limit, window, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.now += gap
        allowed += limiter.allow("ip:1").allowed
    elapsed = sum(gaps)
    assert allowed <= limit + elapsed * limit / window + 1e-9
