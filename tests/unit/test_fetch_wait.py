"""The fetch hold follows the lanes: short while any lane reads full batches, the
configured one once none does, and left alone on a consumer that does not expose it."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from bloghub.projections.fetch_wait import FetchWait


@dataclass
class _Fetcher:
    _fetch_max_wait_ms: int = 500


@dataclass
class _Consumer:
    _fetcher: _Fetcher


def _consumer() -> _Consumer:
    return _Consumer(_Fetcher())


def test_a_lane_reading_full_batches_shortens_the_hold_until_it_reads_less() -> None:
    consumer = _consumer()
    wait = FetchWait(consumer, idle_ms=500, behind_ms=20)
    assert (wait.adjustable, wait.wait_ms, consumer._fetcher._fetch_max_wait_ms) == (True, 500, 500)

    wait.lane_read(0, full=True)
    assert consumer._fetcher._fetch_max_wait_ms == wait.wait_ms == 20
    wait.lane_read(1, full=True)
    wait.lane_read(0, full=False)  # lane 1 is still behind
    assert consumer._fetcher._fetch_max_wait_ms == 20
    wait.lane_read(1, full=False)
    assert consumer._fetcher._fetch_max_wait_ms == wait.wait_ms == 500


@given(reads=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40))
def test_the_hold_is_short_exactly_while_some_lane_last_read_a_full_batch(
    reads: list[tuple[int, bool]],
) -> None:
    consumer = _consumer()
    wait = FetchWait(consumer, idle_ms=300, behind_ms=15)
    last: dict[int, bool] = {}
    for lane, full in reads:
        wait.lane_read(lane, full=full)
        last[lane] = full
        expected = 15 if any(last.values()) else 300
        assert consumer._fetcher._fetch_max_wait_ms == wait.wait_ms == expected


def test_the_short_hold_is_never_longer_than_the_configured_one() -> None:
    consumer = _consumer()
    wait = FetchWait(consumer, idle_ms=10, behind_ms=20)
    wait.lane_read(0, full=True)
    assert consumer._fetcher._fetch_max_wait_ms == 10


def test_a_consumer_without_the_setting_is_left_as_configured() -> None:
    class Bare:
        pass

    wait = FetchWait(Bare(), idle_ms=500, behind_ms=20)
    wait.lane_read(0, full=True)
    assert (wait.adjustable, wait.wait_ms) == (False, 500)

    @dataclass
    class Renamed:  # what a later aiokafka might call it
        fetch_wait_ms: int = 500

    assert not FetchWait(_Consumer(Renamed()), idle_ms=500, behind_ms=20).adjustable  # type: ignore[arg-type]
