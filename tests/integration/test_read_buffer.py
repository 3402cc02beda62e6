"""The API's read buffer on the real log: a read dropped because the buffer was full was
never appended, so the reader's next read of the article, once there is room, is appended
(it is not taken for a repeat of the dropped one), while a read that was appended still
holds back the reader's repeats."""

from __future__ import annotations

from bloghub.commands.read_counting import ReadBuffer
from bloghub.events.log import EventLog
from bloghub.ids import new_id_str


async def test_a_read_dropped_for_a_full_buffer_does_not_mute_the_next(
    event_log: EventLog,
) -> None:
    reads = ReadBuffer(event_log, max_pending=1, repeat_s=60.0)
    author, first, second = new_id_str(), new_id_str(), new_id_str()

    reads.note(first, author, "anon:one")
    reads.note(second, author, "anon:two")  # the buffer is full: dropped
    assert (reads.dropped, reads.repeated) == (1, 0)

    await reads.flush()
    assert reads.appended == 1

    reads.note(second, author, "anon:two")  # room again: this one goes
    reads.note(first, author, "anon:one")  # appended a moment ago: a repeat
    await reads.flush()
    assert reads.appended == 2
    assert (reads.dropped, reads.repeated) == (1, 1)
