"""What the replay tool reports and decides without any store: which generation it builds,
how far it is, its rate and ETA."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.ops.generations_admin import generation_to_build
from bloghub.ops.replay import settings_environment
from bloghub.ops.replay_progress import RateMeter, applied_of, measured
from bloghub.settings import Settings
from tests.conftest import make_settings


def test_an_unfinished_generation_is_resumed_not_started_again() -> None:
    assert generation_to_build({1: "retired", 2: "active", 3: "building"}) == 3
    assert generation_to_build({1: "active", 2: "built"}) == 2


def test_the_next_generation_follows_every_known_one() -> None:
    assert generation_to_build({1: "active"}) == 2
    assert generation_to_build({1: "retired", 2: "active"}) == 3
    # No registered generation: the worker serves generation 1, so a rebuild is 2.
    assert generation_to_build({}) == 2


@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 3)),
        st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
        max_size=8,
    )
)
def test_done_never_exceeds_total(parts: dict[tuple[str, int], tuple[int, int]]) -> None:
    ends = {tp: end for tp, (end, _) in parts.items()}
    checkpoints = {tp: cp for tp, (_, cp) in parts.items()}
    done, total = applied_of(checkpoints, ends)
    assert 0 <= done <= total == sum(ends.values())


def test_rate_and_eta_follow_the_progress() -> None:
    meter = RateMeter(weight=1.0)
    first = measured("users", 2, "building", 0, 10_000, meter)
    assert (first.events_per_s, first.eta_s) == (None, None)  # no rate after one look
    meter.observe(0, 100.0)
    meter.observe(2_000, 102.0)
    assert meter.rate == 1_000.0
    assert meter.eta(8_000) == 8.0
    assert meter.eta(0) == 0.0


def test_progress_carries_the_dashboard_fields() -> None:
    progress = measured("articles", 3, "building", 40, 100, RateMeter())
    assert set(progress.to_json()) >= {
        "projector",
        "generation",
        "state",
        "done",
        "total",
        "events_per_s",
        "eta_s",
    }
    assert progress.left == 60


def test_builder_processes_get_the_coordinators_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A builder child reads its settings from the environment: it must land on the
    coordinator's log and database, not on whatever the environment says by default."""
    coordinator = make_settings("t-builder", "bloghub_builder", replay_caught_up_events=7)
    for key in [k for k in os.environ if k.startswith("BLOGHUB_")]:
        monkeypatch.delenv(key)
    for key, value in settings_environment(coordinator).items():
        monkeypatch.setenv(key, value)
    assert Settings() == coordinator
