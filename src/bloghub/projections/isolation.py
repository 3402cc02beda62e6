"""Finding which event is at fault when a batch keeps failing.

The batch's events are applied one at a time, the partitions taking turns so that every
partition's next event is tried before any partition's second. An event is dead-lettered
only when it is shown to be its own fault:
- it fails alone while a neighbour (an event of another partition) applies after it, or
- it is the batch's only failure and the store refused its data (a constraint or data
  error: ``Conflict``, ``StoreRejected``).
Otherwise - every event tried fails, or fails in a way nothing explains - the store is
unwell in a way no adapter named, and its partition halts where it stands: the runner
waits and tries again, and never empties the batch into the dead-letter queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bloghub.errors import Conflict, StoreRejected
from bloghub.events.base import Recorded
from bloghub.projections.backoff import Stopping
from bloghub.projections.port import TP

Apply = Callable[[Sequence[Recorded], Mapping[TP, int]], Awaitable[Sequence[Recorded]]]
DeadLetter = Callable[[Recorded, Exception], Awaitable[None]]
OWN_FAULT = (Conflict, StoreRejected)


@dataclass(slots=True)
class Isolated:
    fresh: list[Recorded] = field(default_factory=list)
    reached: dict[TP, int] = field(default_factory=dict)  # each partition's checkpoint now
    halted: dict[TP, Exception] = field(default_factory=dict)  # stopped at reached[tp]


@dataclass(slots=True)
class _Suspect:
    record: Recorded
    error: Exception
    applied_before: int  # how many events had applied when it failed


async def isolate(
    events: Mapping[TP, Sequence[Recorded]],
    ends: Mapping[TP, int],
    apply: Apply,
    dead_letter: DeadLetter,
) -> Isolated:
    """Apply ``events`` (per partition, in log order) one at a time; each partition's
    checkpoint reaches ``ends`` unless it halts."""
    out = Isolated()
    queues = {tp: deque(events.get(tp, ())) for tp in ends}
    suspects: dict[TP, _Suspect] = {}
    applied = 0
    while True:
        progress = True
        while progress:
            progress = False
            for tp, queue in queues.items():
                if tp in suspects or not queue:
                    continue
                rec = queue.popleft()
                try:
                    out.fresh += await apply([rec], {tp: rec.offset + 1})
                except Stopping:
                    raise
                except Exception as exc:
                    suspects[tp] = _Suspect(rec, exc, applied)
                    continue
                applied, progress = applied + 1, True
                for other in [t for t, s in suspects.items() if s.applied_before < applied]:
                    await _condemn(other, suspects.pop(other), apply, dead_letter)
        lone = list(suspects.items())
        if len(lone) == 1 and isinstance(lone[0][1].error, OWN_FAULT):
            await _condemn(lone[0][0], suspects.pop(lone[0][0]), apply, dead_letter)
            continue
        break
    for tp, end in ends.items():
        suspect = suspects.get(tp)
        if suspect is not None:
            out.reached[tp] = suspect.record.offset
            out.halted[tp] = suspect.error
        else:
            # Records dead-lettered at decode time still need the checkpoint moved.
            out.reached[tp] = end
            await apply([], {tp: end})
    return out


async def _condemn(tp: TP, suspect: _Suspect, apply: Apply, dead_letter: DeadLetter) -> None:
    await dead_letter(suspect.record, suspect.error)
    await apply([], {tp: suspect.record.offset + 1})
