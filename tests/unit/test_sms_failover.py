"""Failover strategies and the circuit breaker, with scripted providers and a hand-moved
clock: which provider a user's SMS goes through, and when a failing one is left alone."""

from __future__ import annotations

from typing import Literal

import pytest

from bloghub.auth.sms.failover import (
    AllProvidersFailed,
    BreakerState,
    CircuitBreaker,
    Guard,
    GuardedProvider,
    RoundRobinFailover,
    TimeoutSwitchFailover,
)
from bloghub.auth.sms.providers import CircuitOpen, ProviderError, ProviderTimeout
from tests.fakes import Scripted

Outcome = Literal["ok", "fail", "timeout", "crash", "hang"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PHONE = "+8613800138000"
LENIENT = Guard(timeout_s=5, failures_to_open=100, cooldown_s=30)


async def send_many(failover: RoundRobinFailover | TimeoutSwitchFailover, n: int) -> list[str]:
    return [await failover.send(PHONE, f"message {i}") for i in range(n)]


async def test_round_robin_spreads_messages_in_turn() -> None:
    a, b, c = Scripted("a"), Scripted("b"), Scripted("c")
    failover = RoundRobinFailover([a, b, c], guard=LENIENT)
    assert await send_many(failover, 6) == ["a", "b", "c", "a", "b", "c"]
    assert (a.calls, b.calls, c.calls) == (2, 2, 2)


async def test_round_robin_moves_on_from_a_failure_and_comes_back() -> None:
    a, b = Scripted("a", ["fail"]), Scripted("b")
    failover = RoundRobinFailover([a, b], guard=LENIENT)
    assert await send_many(failover, 3) == ["b", "b", "a"]
    assert a.sent[0] == b.sent[0] == (PHONE, "message 0")


async def test_each_provider_is_tried_once_per_message() -> None:
    a, b, c = Scripted("a", then="fail"), Scripted("b", then="timeout"), Scripted("c", then="fail")
    failover = RoundRobinFailover([a, b, c], guard=LENIENT)
    with pytest.raises(AllProvidersFailed) as caught:
        await failover.send(PHONE, "hello")
    assert (a.calls, b.calls, c.calls) == (1, 1, 1)
    assert [e.provider for e in caught.value.errors] == ["a", "b", "c"]
    assert isinstance(caught.value.errors[1], ProviderTimeout)


async def test_three_timeouts_in_a_row_switch_provider() -> None:
    a, b = Scripted("a", then="timeout"), Scripted("b")
    failover = TimeoutSwitchFailover([a, b], timeouts_to_switch=3, guard=LENIENT)
    # Every message still arrives (b takes over each one a times out on) ...
    assert await send_many(failover, 3) == ["b", "b", "b"]
    assert failover.current == "b"
    # ... and once switched, a is no longer asked first.
    assert await send_many(failover, 4) == ["b"] * 4
    assert a.calls == 3


async def test_a_success_resets_the_timeout_count() -> None:
    a, b = Scripted("a", ["timeout", "timeout", "ok", "timeout", "timeout"]), Scripted("b")
    failover = TimeoutSwitchFailover([a, b], timeouts_to_switch=3, guard=LENIENT)
    assert await send_many(failover, 6) == ["b", "b", "a", "b", "b", "a"]
    assert failover.current == "a"


async def test_other_errors_fail_over_without_switching() -> None:
    a, b = Scripted("a", then="fail"), Scripted("b")
    failover = TimeoutSwitchFailover([a, b], timeouts_to_switch=3, guard=LENIENT)
    assert await send_many(failover, 5) == ["b"] * 5
    assert failover.current == "a"
    assert a.calls == 5


async def test_the_switch_wraps_around() -> None:
    a, b = Scripted("a", then="timeout"), Scripted("b", then="timeout")
    failover = TimeoutSwitchFailover([a, b], timeouts_to_switch=1, guard=LENIENT)
    with pytest.raises(AllProvidersFailed):
        await failover.send(PHONE, "x")  # a times out (switch to b), b too (back to a)
    assert failover.current == "a"


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=3, cooldown_s=30, clock=clock)
    states = []
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
        states.append(breaker.state)
    assert states == [BreakerState.CLOSED, BreakerState.CLOSED, BreakerState.OPEN]
    assert not breaker.allow()
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    states.append(breaker.state)
    assert breaker.allow()
    assert not breaker.allow()  # one trial at a time
    breaker.record_success()
    states.append(breaker.state)
    assert states[3:] == [BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert breaker.allow()


def test_a_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=1, cooldown_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_success_before_the_threshold_clears_the_failures() -> None:
    breaker = CircuitBreaker(failures_to_open=2, cooldown_s=10, clock=Clock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


async def test_an_open_breaker_spares_the_provider_until_the_cooldown() -> None:
    clock = Clock()
    a = Scripted("a", ["fail", "fail"])
    b = Scripted("b")
    guard = Guard(timeout_s=5, failures_to_open=2, cooldown_s=30)
    failover = TimeoutSwitchFailover([a, b], guard=guard, clock=clock)
    assert await send_many(failover, 4) == ["b"] * 4
    assert a.calls == 2  # messages 3 and 4 were rejected without calling a
    clock.now += 30
    assert await failover.send(PHONE, "after cooldown") == "a"  # the trial closes it
    assert failover.providers[0].breaker.state is BreakerState.CLOSED


async def test_a_slow_call_becomes_a_timeout() -> None:
    guarded = GuardedProvider(Scripted("slow", then="hang"), Guard(timeout_s=0.01))
    with pytest.raises(ProviderTimeout):
        await guarded.send(PHONE, "x")


async def test_a_crashing_provider_is_a_provider_error() -> None:
    guarded = GuardedProvider(Scripted("buggy", then="crash"), Guard(failures_to_open=1))
    with pytest.raises(ProviderError) as caught:
        await guarded.send(PHONE, "x")
    assert "bug in the provider adapter" in caught.value.reason
    with pytest.raises(CircuitOpen):
        await guarded.send(PHONE, "x")


def test_failover_needs_distinct_providers() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RoundRobinFailover([])
    with pytest.raises(ValueError, match="unique"):
        RoundRobinFailover([Scripted("a"), Scripted("a")])
