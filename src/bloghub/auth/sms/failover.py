"""Failover across SMS providers, each call guarded by a timeout and a circuit breaker.

Two strategies share one port (``send(phone, text) -> provider name``):
``RoundRobinFailover`` spreads messages over providers and moves on from one that fails;
``TimeoutSwitchFailover`` stays with one provider until it times out N times in a row.
Either tries each provider at most once per message, then raises ``AllProvidersFailed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

import structlog

from bloghub.auth.sms.phones import mask_phone
from bloghub.auth.sms.providers import CircuitOpen, ProviderError, ProviderTimeout, SmsProvider

log = structlog.get_logger(__name__)

Clock = Callable[[], float]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failures_to_open`` failures in a row; after ``cooldown_s`` lets one
    trial call through (half-open), which closes it on success or re-opens it on failure."""

    def __init__(
        self, *, failures_to_open: int = 5, cooldown_s: float = 30.0, clock: Clock = time.monotonic
    ) -> None:
        if failures_to_open < 1 or cooldown_s < 0:
            raise ValueError("failures_to_open must be >= 1 and cooldown_s >= 0")
        self._threshold = failures_to_open
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go now? In half-open, only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._trial_running:
            return False
        self._trial_running = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()  # a failed trial starts a new cool-down

    def release(self) -> None:
        """A call ended without a verdict (cancelled): free the trial slot."""
        self._trial_running = False


@dataclass(frozen=True, slots=True)
class Guard:
    timeout_s: float = 5.0
    failures_to_open: int = 5
    cooldown_s: float = 30.0


class GuardedProvider:
    """A provider behind a per-call timeout and its own circuit breaker."""

    def __init__(self, provider: SmsProvider, guard: Guard, clock: Clock = time.monotonic) -> None:
        self.provider = provider
        self.name = provider.name
        self.timeout_s = guard.timeout_s
        self.breaker = CircuitBreaker(
            failures_to_open=guard.failures_to_open, cooldown_s=guard.cooldown_s, clock=clock
        )

    async def send(self, phone: str, text: str) -> None:
        if not self.breaker.allow():
            raise CircuitOpen(self.name, "circuit open, provider cooling down")
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.provider.send(phone, text)
        except TimeoutError as exc:
            self.breaker.record_failure()
            raise ProviderTimeout(self.name, f"no answer within {self.timeout_s}s") from exc
        except ProviderError:
            self.breaker.record_failure()
            raise
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        except Exception as exc:  # a provider bug must fail over, not fail the request
            self.breaker.record_failure()
            raise ProviderError(self.name, f"unexpected {exc!r}") from exc
        self.breaker.record_success()


class AllProvidersFailed(Exception):
    def __init__(self, errors: Sequence[ProviderError]) -> None:
        super().__init__("no provider delivered: " + "; ".join(map(str, errors)))
        self.errors = list(errors)


class Failover(Protocol):
    providers: tuple[GuardedProvider, ...]

    async def send(self, phone: str, text: str) -> str: ...


class _Strategy:
    def __init__(
        self,
        providers: Sequence[SmsProvider],
        *,
        guard: Guard = Guard(),
        clock: Clock = time.monotonic,
    ) -> None:
        if not providers:
            raise ValueError("failover needs at least one provider")
        if len({p.name for p in providers}) != len(providers):
            raise ValueError("provider names must be unique")
        self.providers = tuple(GuardedProvider(p, guard, clock) for p in providers)

    async def _try(self, index: int, phone: str, text: str, errors: list[ProviderError]) -> bool:
        provider = self.providers[index]
        try:
            await provider.send(phone, text)
        except ProviderError as exc:
            log.warning(
                "sms.provider_failed",
                provider=provider.name,
                phone=mask_phone(phone),
                timeout=isinstance(exc, ProviderTimeout),
                error=exc.reason,
            )
            errors.append(exc)
            return False
        return True


class RoundRobinFailover(_Strategy):
    """Message k starts at provider k mod n, then tries the others in order."""

    _next = 0

    async def send(self, phone: str, text: str) -> str:
        count = len(self.providers)
        start, self._next = self._next, (self._next + 1) % count
        errors: list[ProviderError] = []
        for step in range(count):
            index = (start + step) % count
            if await self._try(index, phone, text, errors):
                return self.providers[index].name
        raise AllProvidersFailed(errors)


class TimeoutSwitchFailover(_Strategy):
    """Stay with the current provider until it times out ``timeouts_to_switch`` times in a
    row; any message it fails is still offered to the others, in order."""

    def __init__(
        self,
        providers: Sequence[SmsProvider],
        *,
        timeouts_to_switch: int = 3,
        guard: Guard = Guard(),
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(providers, guard=guard, clock=clock)
        if timeouts_to_switch < 1:
            raise ValueError("timeouts_to_switch must be >= 1")
        self._switch_after = timeouts_to_switch
        self._current = 0
        self._timeouts = 0

    @property
    def current(self) -> str:
        return self.providers[self._current].name

    async def send(self, phone: str, text: str) -> str:
        count = len(self.providers)
        start = self._current
        errors: list[ProviderError] = []
        for step in range(count):
            index = (start + step) % count
            if await self._try(index, phone, text, errors):
                if index == self._current:
                    self._timeouts = 0
                return self.providers[index].name
            if index == self._current and isinstance(errors[-1], ProviderTimeout):
                self._count_timeout()
        raise AllProvidersFailed(errors)

    def _count_timeout(self) -> None:
        self._timeouts += 1
        if self._timeouts >= self._switch_after:
            self._current = (self._current + 1) % len(self.providers)
            self._timeouts = 0
            log.warning("sms.provider_switched", to=self.current, after_timeouts=self._switch_after)


Strategy = Literal["round_robin", "timeout_switch"]


def make_failover(
    strategy: Strategy,
    providers: Sequence[SmsProvider],
    *,
    guard: Guard = Guard(),
    timeouts_to_switch: int = 3,
) -> Failover:
    if strategy == "round_robin":
        return RoundRobinFailover(providers, guard=guard)
    return TimeoutSwitchFailover(providers, guard=guard, timeouts_to_switch=timeouts_to_switch)
