"""The four phases of moving a projector's PostgreSQL read model to another database, and
what each means for the processes that follow it: which stores the live projector
writes (in order), which store reads come from, which moves an operator may make.

1. source only: the target is filled by the migration's own fill, nothing live writes it;
2. source first: both stores are written, reads from the source;
3. target first: both stores are written, reads from the target (rollback possible);
4. target only: the source is retired.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Phase(IntEnum):
    SOURCE_ONLY = 1
    SOURCE_FIRST = 2
    TARGET_FIRST = 3
    TARGET_ONLY = 4


class Store(StrEnum):
    SOURCE = "source"
    TARGET = "target"


class MigrationRefused(Exception):
    """A projector that cannot be migrated, or a migration step the state does not allow
    (a clear message for the operator)."""


class PhaseRefused(MigrationRefused):
    """A phase move the rules do not allow."""


def reads_from(phase: Phase) -> Store:
    return Store.SOURCE if phase <= Phase.SOURCE_FIRST else Store.TARGET


def other(store: Store) -> Store:
    return Store.TARGET if store is Store.SOURCE else Store.SOURCE


def writes(phase: Phase) -> tuple[Store, ...]:
    """The stores the live projector applies each batch to, in order. The store reads do
    not come from is written first, so the read store is never ahead of the other: when
    reads move over, the store they move to has already applied what they waited for."""
    if phase is Phase.SOURCE_ONLY:
        return (Store.SOURCE,)
    if phase is Phase.TARGET_ONLY:
        return (Store.TARGET,)
    read = reads_from(phase)
    return (other(read), read)


def unwritten(phase: Phase) -> Store | None:
    """The store no live projector writes in ``phase``: the one a fill catches up."""
    written = writes(phase)
    missing = [s for s in Store if s not in written]
    return missing[0] if missing else None


def check_move(current: Phase, wanted: Phase) -> None:
    """One phase forward or back at a time. Adjacent phases always both write the store
    either of them reads, so a request pinned to the phase it started in still finds its
    store kept up while every process moves over (no grace period needed), and a store
    that starts being read has been written all along the phase before."""
    if wanted is current:
        raise PhaseRefused(f"the migration is in phase {int(current)} already")
    if abs(int(wanted) - int(current)) != 1:
        raise PhaseRefused(
            f"a migration moves one phase at a time: it is in phase {int(current)}, "
            f"phase {int(wanted)} is not next to it"
        )


def must_catch_up(current: Phase, wanted: Phase) -> Store | None:
    """The store that must be caught up with the log before the move is made: the one that
    starts being read, or starts being written live (a far-behind store would hold the
    live projector back while it catches up, and with it every read)."""
    before, after = set(writes(current)), set(writes(wanted))
    starting = after - before
    if starting:
        return starting.pop()
    if reads_from(current) is not reads_from(wanted):
        return reads_from(wanted)
    return None


# Reads of these join tables that stay in the main database (the write-side index), so
# their read model cannot live in another one.
PINNED_TO_MAIN = {"users": "its reads join the write-side index (reservations)"}
