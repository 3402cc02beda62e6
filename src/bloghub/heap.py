"""The garbage collector's settings for a long-lived bloghub process (a projector worker,
an API worker), applied once its start-up is done."""

from __future__ import annotations

import gc

# Young collections after 50,000 net allocations instead of CPython's 700. A projector
# makes and drops about fifteen objects per event, almost all freed by reference counting,
# so at 700 the collector ran some 2,400 times per 200k events and, with its older-
# generation passes over the batches in flight, took about a fifth of the process's CPU
# (bench/projector.py; alternated in one process: 32k -> 39k events/s median). An API
# request is the same: a draft create makes and drops a few hundred objects, and the
# collector's passes (with the clients and start-up objects in them) took about a tenth
# of its CPU.
GC_THRESHOLDS = (50_000, 20, 20)


def settle_heap() -> None:
    """Take what start-up made (modules, the SQLAlchemy and pydantic machinery, clients) out
    of the garbage collector's scans: it lives as long as the process, and a worker that
    makes and drops thousands of objects per batch would otherwise rescan it in every full
    collection (about a third of a projector's CPU time on this machine, see bench/).
    Then collect less often (``GC_THRESHOLDS``): what a batch makes dies by reference
    counting, not by collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
