"""When a batch keeps failing, only an event shown to be at fault is dead-lettered; when
every event fails alike, its partition halts instead of emptying into the DLQ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bloghub.errors import StoreRejected
from bloghub.events.base import Recorded
from bloghub.events.users import UserRegistered
from bloghub.ids import new_id_str
from bloghub.projections.isolation import isolate
from bloghub.projections.port import TP
from tests.support import recorded

A, B = ("t", 0), ("t", 1)


class Store:
    """An in-memory store that fails the events it is told to, or every write."""

    def __init__(self, *, poison: Mapping[int, Exception] = {}, broken: bool = False) -> None:
        self.poison = dict(poison)
        self.broken = broken
        self.applied: list[int] = []
        self.checkpoints: dict[TP, int] = {}
        self.dead: list[int] = []

    async def apply(
        self, records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        if self.broken:
            raise RuntimeError("something no adapter named")
        for rec in records:
            if rec.offset in self.poison:
                raise self.poison[rec.offset]
        self.applied += [r.offset for r in records]
        self.checkpoints.update(next_offsets)
        return records

    async def dead_letter(self, rec: Recorded, exc: Exception) -> None:
        self.dead.append(rec.offset)


def events(tp: TP, *offsets: int) -> list[Recorded]:
    return [
        recorded(
            UserRegistered(user_id=new_id_str(), email=f"{o}@example.com", password_hash="h"),
            topic=tp[0],
            partition=tp[1],
            offset=o,
        )
        for o in offsets
    ]


async def test_an_event_failing_while_its_neighbours_apply_is_dead_lettered() -> None:
    store = Store(poison={10: RuntimeError("this event breaks the projector")})
    batch = {A: events(A, 10, 11, 12), B: events(B, 20, 21)}
    out = await isolate(batch, {A: 13, B: 22}, store.apply, store.dead_letter)
    assert store.dead == [10]
    assert sorted(store.applied) == [11, 12, 20, 21]
    assert out.reached == {A: 13, B: 22}
    assert not out.halted


async def test_every_event_failing_alike_halts_and_dead_letters_nothing() -> None:
    store = Store(broken=True)
    batch = {A: events(A, 10, 11), B: events(B, 20, 21)}
    out = await isolate(batch, {A: 12, B: 22}, store.apply, store.dead_letter)
    assert store.dead == []
    assert out.reached == {A: 10, B: 20}
    assert set(out.halted) == {A, B}


async def test_a_lone_failure_of_unknown_kind_halts() -> None:
    store = Store(poison={10: RuntimeError("nothing says whose fault this is")})
    out = await isolate({A: events(A, 10, 11)}, {A: 12}, store.apply, store.dead_letter)
    assert store.dead == []
    assert store.applied == []
    assert out.reached == {A: 10}
    assert A in out.halted


async def test_a_lone_event_whose_data_the_store_refuses_is_dead_lettered() -> None:
    store = Store(poison={10: StoreRejected("23502: null value in column")})
    out = await isolate({A: events(A, 10, 11)}, {A: 12}, store.apply, store.dead_letter)
    assert store.dead == [10]
    assert store.applied == [11]
    assert out.reached == {A: 12}
    assert not out.halted


async def test_a_partition_failing_after_its_neighbour_applied_halts_only_itself() -> None:
    # B's first event applies before A's fails; A's failure is not shown to be its own
    # (nothing applied after it), so A halts while B goes on.
    store = Store(poison={10: RuntimeError("?"), 11: RuntimeError("?")})
    batch = {B: events(B, 20), A: events(A, 10, 11)}
    out = await isolate(batch, {B: 21, A: 12}, store.apply, store.dead_letter)
    assert store.dead == []
    assert out.reached == {A: 10, B: 21}
    assert set(out.halted) == {A}


async def test_a_store_that_comes_back_during_isolation_blames_no_event() -> None:
    store = Store(poison={10: RuntimeError("refused for now")})

    async def recovering(
        records: Sequence[Recorded], next_offsets: Mapping[TP, int]
    ) -> Sequence[Recorded]:
        if any(r.partition == B[1] for r in records):
            store.poison.clear()  # the store is well again by the time B is tried
        return await store.apply(records, next_offsets)

    batch = {A: events(A, 10, 11), B: events(B, 20)}
    out = await isolate(batch, {A: 12, B: 21}, recovering, store.dead_letter)
    assert store.dead == []
    assert sorted(store.applied) == [10, 11, 20]
    assert out.reached == {A: 12, B: 21}
