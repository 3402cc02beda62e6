"""Steps after an append are retried off the caller's path and never raise into it."""

from __future__ import annotations

from bloghub.commands.after_append import AfterAppend


async def test_a_failing_step_is_retried_until_it_succeeds() -> None:
    after = AfterAppend(tries=5, wait_s=5.0, first_backoff_s=0.001)
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("the store is unwell")

    await after.run("flaky", flaky)
    assert len(calls) == 3


async def test_a_step_that_never_succeeds_is_given_up_without_raising() -> None:
    after = AfterAppend(tries=3, wait_s=0.0, first_backoff_s=0.001)
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise RuntimeError("never")

    await after.run("broken", broken)  # the caller answers at once, whatever the step does
    await after.drain(5.0)
    assert len(calls) == 3
