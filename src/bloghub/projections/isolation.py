"""Finding which event is at fault when a batch keeps failing.

The batch's events are applied one at a time, the partitions taking turns so that every
partition's next event is tried before any partition's second. An event is dead-lettered
only when it is shown to be its own fault:
- it fails alone while a neighbour (an event of another partition) applies after it, and
  again when tried once more right after, or
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
    return await _Isolation(events, ends, apply, dead_letter).run()


class _Isolation:
    def __init__(
        self,
        events: Mapping[TP, Sequence[Recorded]],
        ends: Mapping[TP, int],
        apply: Apply,
        dead_letter: DeadLetter,
    ) -> None:
        self.out = Isolated()
        self.ends = ends
        self.queues = {tp: deque(events.get(tp, ())) for tp in ends}
        self.suspects: dict[TP, _Suspect] = {}
        self.applied = 0
        self._apply = apply
        self._dead_letter = dead_letter

    async def run(self) -> Isolated:
        while True:
            while await self._round():
                pass
            lone = list(self.suspects.items())
            if not (len(lone) == 1 and isinstance(lone[0][1].error, OWN_FAULT)):
                break
            await self._condemn(lone[0][0], self.suspects.pop(lone[0][0]))
        for tp, end in self.ends.items():
            suspect = self.suspects.get(tp)
            if suspect is not None:
                self.out.reached[tp] = suspect.record.offset
                self.out.halted[tp] = suspect.error
            else:
                # Records dead-lettered at decode time still need the checkpoint moved.
                self.out.reached[tp] = end
                await self._apply([], {tp: end})
        return self.out

    async def _round(self) -> bool:
        """Try every partition's next event once; whether any applied."""
        progress = False
        for tp, queue in self.queues.items():
            if tp in self.suspects or not queue:
                continue
            rec = queue.popleft()
            error = await self._try(rec)
            if error is not None:
                self.suspects[tp] = _Suspect(rec, error, self.applied)
                continue
            progress = True
            for other in [t for t, s in self.suspects.items() if s.applied_before < self.applied]:
                await self._retry_or_condemn(other, self.suspects.pop(other))
        return progress

    async def _try(self, rec: Recorded) -> Exception | None:
        try:
            self.out.fresh += await self._apply([rec], {(rec.topic, rec.partition): rec.offset + 1})
        except Stopping:
            raise
        except Exception as exc:
            return exc
        self.applied += 1
        return None

    async def _retry_or_condemn(self, tp: TP, suspect: _Suspect) -> None:
        # A neighbour applied after it failed: the store works. It may only now have come
        # back, so the event is tried once more before it is blamed.
        error = await self._try(suspect.record)
        if error is not None:
            suspect.error = error
            await self._condemn(tp, suspect)

    async def _condemn(self, tp: TP, suspect: _Suspect) -> None:
        await self._dead_letter(suspect.record, suspect.error)
        await self._apply([], {tp: suspect.record.offset + 1})
