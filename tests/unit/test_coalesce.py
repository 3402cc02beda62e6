"""Questions asked while one round trip is on its way go together in the next; every
caller gets its own answer, or the error of the round trip its question was in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bloghub.coalesce import Coalesced


class Store:
    """Answers a batch once released, remembering every batch it was asked."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_next: Exception | None = None

    async def ask(self, keys: list[str]) -> list[str]:
        self.asked.append(keys)
        await self.release.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return [k.upper() for k in keys]


async def until(condition: Callable[[], object]) -> None:
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_callers_waiting_for_a_round_trip_are_asked_together_in_the_next() -> None:
    store = Store()
    ask = Coalesced(store.ask, max_in_flight=1)
    first = asyncio.ensure_future(ask("a"))
    await until(lambda: store.asked)
    meanwhile = [asyncio.ensure_future(ask(k)) for k in ("b", "c", "b")]
    await asyncio.sleep(0)
    store.release.set()
    assert await first == "A"
    assert [await m for m in meanwhile] == ["B", "C", "B"]
    assert store.asked == [["a"], ["b", "c", "b"]]


async def test_a_failed_round_trip_fails_each_of_its_callers_and_the_next_one_is_asked() -> None:
    store = Store()
    ask = Coalesced(store.ask, max_in_flight=1)
    store.fail_next = ConnectionError("the store is unwell")
    failing = [asyncio.ensure_future(ask(k)) for k in ("a", "b")]
    await until(lambda: store.asked)
    later = asyncio.ensure_future(ask("c"))
    store.release.set()
    for f in failing:
        with pytest.raises(ConnectionError):
            await f
    assert await later == "C"
    assert store.asked == [["a", "b"], ["c"]]


async def test_a_caller_that_gave_up_is_not_asked_for() -> None:
    store = Store()
    ask = Coalesced(store.ask, max_in_flight=1)
    first = asyncio.ensure_future(ask("a"))
    await until(lambda: store.asked)
    gone = asyncio.ensure_future(ask("b"))
    kept = asyncio.ensure_future(ask("c"))
    await asyncio.sleep(0)
    gone.cancel()
    store.release.set()
    assert (await first, await kept) == ("A", "C")
    assert store.asked == [["a"], ["c"]]


async def test_below_max_in_flight_a_caller_is_asked_for_at_once() -> None:
    store = Store()
    ask = Coalesced(store.ask, max_in_flight=2)
    first = asyncio.ensure_future(ask("a"))
    await until(lambda: store.asked)
    second = asyncio.ensure_future(ask("b"))
    await until(lambda: len(store.asked) == 2)  # not held behind the first round trip
    third = asyncio.ensure_future(ask("c"))
    fourth = asyncio.ensure_future(ask("d"))
    await asyncio.sleep(0)
    store.release.set()
    assert [await f for f in (first, second, third, fourth)] == ["A", "B", "C", "D"]
    assert store.asked == [["a"], ["b"], ["c", "d"]]


async def test_batches_hold_at_most_max_batch_questions() -> None:
    store = Store()
    store.release.set()
    ask = Coalesced(store.ask, max_batch=2)
    answers = await asyncio.gather(*(ask(k) for k in "abcde"))
    assert answers == list("ABCDE")
    assert all(len(batch) <= 2 for batch in store.asked)
    assert sorted(k for batch in store.asked for k in batch) == list("abcde")


async def test_a_caller_asking_again_as_its_round_trip_ends_is_asked_for() -> None:
    """Both round trips in flight answer in one loop turn; a caller woken by the first
    asks again at once, before the senders' tasks have finished: its question is sent,
    not left waiting for some other caller to come."""
    store = Store()
    coalesced = Coalesced(store.ask, max_in_flight=2)

    async def caller(key: str, again: bool) -> str:
        first = await coalesced(key)
        return await coalesced(f"{key}-again") if again else first

    quiet = asyncio.create_task(caller("a", again=False))
    await asyncio.sleep(0)
    busy = asyncio.create_task(caller("b", again=True))
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.wait_for(busy, timeout=2) == "B-AGAIN"
    assert await quiet == "A"
