from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bloghub.ops.states import Sample, State, absent, evaluate, waiting_state

NOW = 1_000.0
WINDOW = 60.0


def s(at: float, lag: int, offset: int, *, dead: int = 0, commit: float | None = None) -> Sample:
    return Sample(
        at=NOW - at,
        lag=lag,
        committed={"t|0": offset},
        dead_letters=dead,
        last_commit_at=NOW - (commit if commit is not None else at),
    )


def test_moving_consumer_is_ok() -> None:
    assert (
        evaluate([s(50, 5, 10), s(30, 3, 20), s(10, 0, 30)], now=NOW, window_s=WINDOW) is State.OK
    )


def test_no_sample_within_the_window_is_unknown() -> None:
    """The samplers could not reach Kafka: how far behind it is, no one knows."""
    assert evaluate([], now=NOW, window_s=WINDOW) is State.UNKNOWN
    assert evaluate([s(WINDOW + 1, 0, 10)], now=NOW, window_s=WINDOW) is State.UNKNOWN


def test_lag_that_only_grows_warns() -> None:
    samples = [s(50, 5, 10), s(30, 8, 20), s(10, 12, 30)]
    assert evaluate(samples, now=NOW, window_s=WINDOW) is State.WARN


def test_nothing_committed_for_a_window_with_lag_is_stop() -> None:
    samples = [s(50, 5, 10, commit=70), s(10, 9, 10, commit=70)]
    assert evaluate(samples, now=NOW, window_s=WINDOW) is State.STOP


def test_never_committed_with_lag_is_stop() -> None:
    sample = Sample(at=NOW - 1, lag=3, committed={}, last_commit_at=None)
    assert evaluate([sample], now=NOW, window_s=WINDOW) is State.STOP
    watched = evaluate([sample], now=NOW, window_s=WINDOW, first_seen=NOW - WINDOW)
    assert watched is State.STOP


def test_a_group_that_has_not_committed_yet_is_not_stopped_within_its_first_window() -> None:
    # A replay or a projector a few seconds into its first batch: lag, and no commit yet.
    samples = [Sample(at=NOW - i, lag=13_000, committed={}) for i in (4, 2, 0)]
    assert evaluate(samples, now=NOW, window_s=WINDOW, first_seen=NOW - 4) is not State.STOP
    # Idle since long ago (never a commit, nothing to do), and its first event just came.
    idle = [Sample(at=NOW - i, lag=0 if i > 2 else 1, committed={}) for i in (50, 30, 10, 2, 0)]
    assert evaluate(idle, now=NOW, window_s=WINDOW, first_seen=NOW - 3000) is not State.STOP


def test_commits_that_do_not_move_are_stall() -> None:
    samples = [s(59, 5, 10, commit=1), s(30, 6, 10, commit=1), s(1, 7, 10, commit=1)]
    assert evaluate(samples, now=NOW, window_s=WINDOW) is State.STALL


def test_an_offset_going_back_is_rewind() -> None:
    samples = [s(50, 0, 30), s(30, 0, 10), s(10, 0, 20)]
    assert evaluate(samples, now=NOW, window_s=WINDOW) is State.REWIND


def test_growing_dead_letters_is_err() -> None:
    samples = [s(50, 0, 10, dead=1), s(10, 0, 20, dead=2)]
    assert evaluate(samples, now=NOW, window_s=WINDOW) is State.ERR


def test_idle_consumer_without_lag_is_ok_even_without_commits() -> None:
    samples = [s(50, 0, 10, commit=3000), s(10, 0, 10, commit=3000)]
    assert evaluate(samples, now=NOW, window_s=WINDOW) is State.OK


def test_samples_outside_the_window_are_ignored() -> None:
    old = s(500, 5, 10, dead=0)
    recent = [s(20, 0, 20, dead=3), s(10, 0, 30, dead=3)]
    assert evaluate([old, *recent], now=NOW, window_s=WINDOW) is State.OK


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_zero_lag_now_is_never_stop_or_stall(lags: list[int]) -> None:
    samples = [s(50 - i, lag, i, commit=5000) for i, lag in enumerate(lags)] + [
        s(0, 0, len(lags), commit=5000)
    ]
    assert evaluate(samples, now=NOW, window_s=WINDOW) not in (State.STOP, State.STALL)


def test_an_instance_waiting_says_why_above_what_samples_suggest() -> None:
    assert waiting_state([]) is None
    assert waiting_state(["store"]) is State.STORE
    # New code is needed before a healthy store can help.
    assert waiting_state(["store", "code"]) is State.UPGRADE


def test_lag_with_no_live_instance_is_absent_unless_the_window_says_worse() -> None:
    """Projectors cut off from Redis cannot say they wait, and their heartbeats lapse:
    "OK" with lag growing and nothing applied hid that."""
    for calm in (State.OK, State.WARN):
        assert absent(calm, instances=0, lag=40) is State.ABSENT
        assert absent(calm, instances=1, lag=40) is calm, "an instance is live"
        assert absent(calm, instances=0, lag=0) is calm, "nothing to apply"
        assert absent(calm, instances=0, lag=None) is calm, "never sampled"
    for worse in (State.STOP, State.STALL, State.REWIND, State.ERR, State.STORE, State.UNKNOWN):
        assert absent(worse, instances=0, lag=40) is worse
