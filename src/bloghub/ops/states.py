"""Projector states from a window of lag samples, after Burrow's evaluation rules.

OK      everything moves (or there is nothing to do);
WARN    lag only grew across the window while the consumer still committed;
STALL   the consumer commits, but its offsets stand still while lag > 0;
STOP    nothing was committed for a whole window while lag > 0;
REWIND  a committed offset went back;
ERR     dead letters grew within the window.
The worst one wins, in the order STOP, STALL, REWIND, ERR, WARN, OK.

What a live instance says of itself comes first: UPGRADE when it waits at an event newer
than its code, STORE when it waits for its store (unwell, or failing every event alike).
UNKNOWN while Redis, which keeps the samples and the heartbeats, does not answer, or
while no sample was taken within the window (the samplers cannot reach Kafka). ABSENT
when no live instance says anything while there is lag to apply, and the window says no
worse: its processes are down, or cannot reach Redis, where heartbeats are kept (an
instance that waits for Redis cannot say so), so "OK" would hide that nothing is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise


class State(StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"
    ERR = "ERR"
    STORE = "STORE"
    UPGRADE = "UPGRADE"
    BUILT = "BUILT"  # built by ``replay --no-swap``, written by no one until switched in
    # Redis, which keeps the history a state is judged on, does not answer, or the window
    # holds no sample of the lag to judge.
    UNKNOWN = "UNKNOWN"
    ABSENT = "ABSENT"  # lag to apply, and no live instance (``absent``)


# What heartbeats name as the reason an instance waits (projections.heartbeat.WaitReason).
_WAITING = {"code": State.UPGRADE, "store": State.STORE}


def waiting_state(reasons: Iterable[str]) -> State | None:
    """The state that the instances' own reasons for waiting give, if any; newer code is
    needed before a store can help."""
    found = {_WAITING[r] for r in reasons if r in _WAITING}
    for state in (State.UPGRADE, State.STORE):
        if state in found:
            return state
    return None


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of a consumer group."""

    at: float
    lag: int
    committed: Mapping[str, int] = field(default_factory=dict)  # "topic|partition" → offset
    dead_letters: int = 0
    last_commit_at: float | None = None


def evaluate(
    samples: Sequence[Sample], *, now: float, window_s: float, first_seen: float | None = None
) -> State:
    """The state of a group given its samples (oldest first) within the window, and when
    it was first sampled: a group that has committed nothing yet (a replay starting, a
    projector's first batch) is stopped only once it has been watched for a window."""
    recent = [s for s in samples if s.at >= now - window_s]
    if not recent:
        # Nothing says how far behind it is: a sampler that cannot reach Kafka, say. "OK"
        # would hide that from the one who looks.
        return State.UNKNOWN
    latest = recent[-1]
    if latest.lag > 0 and _no_commit_for(recent, now, window_s, first_seen):
        return State.STOP
    if latest.lag > 0 and len(recent) >= 2 and _offsets_stand_still(recent, window_s):
        return State.STALL
    if _went_back(recent):
        return State.REWIND
    if latest.dead_letters > recent[0].dead_letters:
        return State.ERR
    if len(recent) >= 3 and all(b.lag > a.lag for a, b in pairwise(recent)):
        return State.WARN
    return State.OK


def _no_commit_for(
    recent: Sequence[Sample], now: float, window_s: float, first_seen: float | None
) -> bool:
    latest = recent[-1]
    if latest.last_commit_at is not None:
        return now - latest.last_commit_at >= window_s
    if first_seen is None:
        return True
    # Never committed: stopped once it has had lag for a window, counted from the first
    # sample of the lag it has now (from when it was first watched if every sample of the
    # window has lag): an idle group's first event is not a stop.
    since = first_seen
    for sample in reversed(recent):
        if sample.lag <= 0:
            break
        since = sample.at
    else:
        since = first_seen
    return now - since >= window_s


def _offsets_stand_still(recent: Sequence[Sample], window_s: float) -> bool:
    spans_window = recent[-1].at - recent[0].at >= window_s * 0.8
    return spans_window and all(s.committed == recent[0].committed for s in recent)


def _went_back(recent: Sequence[Sample]) -> bool:
    for before, after in pairwise(recent):
        for key, offset in after.committed.items():
            if offset < before.committed.get(key, -1):
                return True
    return False


def absent(state: State, *, instances: int, lag: int | None) -> State:
    """``state``, or ABSENT when no instance is live to apply the lag there is and the
    window found nothing worse than WARN (a process stopped a window ago is STOP)."""
    if state in (State.OK, State.WARN) and instances == 0 and (lag or 0) > 0:
        return State.ABSENT
    return state
