"""The rules of a migration's phases: which stores the live projector writes and in which
order, which store reads come from, which moves are allowed and what each waits for; and
the two-store projector's checkpoints and order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bloghub.adapters.postgres.migrations import shown_url
from bloghub.events.articles import ArticleDeleted
from bloghub.events.base import Event, Recorded, envelop
from bloghub.events.topics import Family
from bloghub.ids import new_id_str
from bloghub.migration_phases import (
    Phase,
    PhaseRefused,
    Store,
    check_move,
    must_catch_up,
    reads_from,
    unwritten,
    writes,
)
from bloghub.projections.migration_sinks import TwoStores
from bloghub.projections.port import TP

S, T = Store.SOURCE, Store.TARGET


def test_each_phase_writes_and_reads_the_stores_operators_expect() -> None:
    assert [writes(p) for p in Phase] == [(S,), (T, S), (S, T), (T,)]
    assert [reads_from(p) for p in Phase] == [S, S, T, T]
    assert [unwritten(p) for p in Phase] == [T, None, None, S]


def test_reads_come_from_a_store_the_phase_writes_last() -> None:
    for phase in Phase:
        assert writes(phase)[-1] is reads_from(phase)


@pytest.mark.parametrize(("current", "wanted"), [(1, 2), (2, 3), (3, 4), (4, 3), (3, 2), (2, 1)])
def test_one_phase_forward_or_back_is_allowed(current: int, wanted: int) -> None:
    check_move(Phase(current), Phase(wanted))


@pytest.mark.parametrize(("current", "wanted"), [(1, 3), (1, 4), (2, 4), (4, 1), (4, 2)])
def test_a_jump_is_refused(current: int, wanted: int) -> None:
    with pytest.raises(PhaseRefused, match="one phase at a time"):
        check_move(Phase(current), Phase(wanted))


@pytest.mark.parametrize("phase", [1, 2, 3, 4])
def test_a_move_to_the_phase_it_is_in_is_refused_saying_so(phase: int) -> None:
    with pytest.raises(PhaseRefused, match=f"in phase {phase} already"):
        check_move(Phase(phase), Phase(phase))


def test_a_move_waits_for_the_store_it_starts_reading_or_writing() -> None:
    assert must_catch_up(Phase(1), Phase(2)) is T  # the filled target starts being written
    assert must_catch_up(Phase(2), Phase(3)) is T  # reads move to the target
    assert must_catch_up(Phase(3), Phase(4)) is None
    assert must_catch_up(Phase(4), Phase(3)) is S  # the retired source is written again
    assert must_catch_up(Phase(3), Phase(2)) is S  # reads move back
    assert must_catch_up(Phase(2), Phase(1)) is None


@given(st.lists(st.booleans(), max_size=30))
def test_any_walk_keeps_the_read_store_written_on_both_sides_of_each_move(
    forward: list[bool],
) -> None:
    """What lets every process switch without a grace period: across a move, the store
    either phase reads is written by both."""
    phase = Phase.SOURCE_ONLY
    for step in forward:
        wanted = Phase(min(4, phase + 1) if step else max(1, phase - 1))
        if wanted == phase:
            continue
        check_move(phase, wanted)
        for read in (reads_from(phase), reads_from(wanted)):
            assert read in writes(phase)
            assert read in writes(wanted)
        phase = wanted


class Sink:
    """A store with its own checkpoints (unit-test stand-in for a Postgres projector)."""

    name = "articles"
    families: tuple[Family, ...] = (Family.ARTICLES,)
    generation = 1

    def __init__(self, journal: list[str], label: str, stored: dict[TP, int]) -> None:
        self.journal, self.label, self.stored = journal, label, stored
        self.hooks: list[int] = []

    async def load_checkpoints(self, partitions: Sequence[TP]) -> dict[TP, int]:
        return {tp: self.stored[tp] for tp in partitions if tp in self.stored}

    def passes_over(self, model: type[Event]) -> bool:
        return False

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        fresh = [r for r in records if r.offset >= self.stored.get((r.topic, r.partition), 0)]
        self.journal.append(f"{self.label}:{len(fresh)}")
        self.stored.update(next_offsets)
        return fresh

    async def after_commit(self, records: Sequence[Recorded]) -> None:
        self.hooks.append(len(records))


def _records(partition: int, offsets: range) -> list[Recorded]:
    event = ArticleDeleted(article_id=new_id_str(), author_id=new_id_str(), version=2)
    env = envelop(event, actor_id=None, request_id=None)
    return [Recorded(env, event, "a", partition, o, 0) for o in offsets]


async def test_two_stores_resume_from_the_lower_checkpoint_and_write_the_read_store_last() -> None:
    journal: list[str] = []
    target = Sink(journal, "target", {("a", 0): 5, ("a", 1): 9})
    source = Sink(journal, "source", {("a", 0): 8, ("a", 1): 9, ("a", 2): 1})
    both = TwoStores([target, source])  # phase 2: the target first, reads from the source
    assert await both.load_checkpoints([("a", 0), ("a", 1), ("a", 2)]) == {
        ("a", 0): 5,
        ("a", 1): 9,
    }  # no checkpoint in the target for partition 2: from the log's start
    # From the lower checkpoint: each store applies only what it lacks, exactly once.
    fresh = await both.apply(_records(0, range(5, 10)), {("a", 0): 10})
    assert journal == ["target:5", "source:2"]
    assert [r.offset for r in fresh] == [8, 9]  # what the read store took
    assert target.stored[("a", 0)] == source.stored[("a", 0)] == 10
    await both.after_commit(fresh)
    assert source.hooks == [2]
    assert target.hooks == []


def test_a_target_url_is_shown_without_its_password() -> None:
    shown = shown_url("postgresql+asyncpg://blog:s3cret-pw@db2:5432/blog")
    assert "s3cret-pw" not in shown
    assert shown.startswith("postgresql+asyncpg://blog:")
    assert shown.endswith("@db2:5432/blog")
    # Something that is no URL at all might be a password pasted in the wrong place.
    assert shown_url("hunter2-is-not-a-url") == "(not a database URL)"
