"""The API process's background jobs: one that fails is started again, and the others go on."""

from __future__ import annotations

import asyncio

from bloghub.bootstrap import kept_running


async def test_a_failing_job_is_restarted_and_the_others_go_on() -> None:
    stop = asyncio.Event()
    runs: list[str] = []
    ticks = 0

    async def flaky(stop: asyncio.Event) -> None:
        runs.append("flaky")
        if len(runs) < 3:
            raise RuntimeError("boom")
        stop.set()  # the third run lasts: the test is over

    async def steady(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    await asyncio.wait_for(
        asyncio.gather(
            kept_running("flaky", flaky, stop, first_delay_s=0.01),
            kept_running("steady", steady, stop),
        ),
        timeout=5,
    )
    assert runs == ["flaky", "flaky", "flaky"]
    assert ticks > 1


async def test_a_job_that_returns_is_not_started_again() -> None:
    stop = asyncio.Event()
    runs = 0

    async def once(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1

    await asyncio.wait_for(kept_running("once", once, stop), timeout=5)
    assert runs == 1
