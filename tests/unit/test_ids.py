from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bloghub.ids import new_id, new_id_str, time_of


def test_ids_are_uuid7_and_time_ordered() -> None:
    ids = [new_id() for _ in range(5000)]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_an_ids_time_is_the_millisecond_it_was_made_and_follows_id_order() -> None:
    before = datetime.now(UTC)
    ids = [new_id_str() for _ in range(5000)]
    after = datetime.now(UTC)
    times = [time_of(i) for i in ids]
    assert before - timedelta(milliseconds=1) <= times[0] <= times[-1] <= after
    assert times == sorted(times), "ids in order show their times in order"
