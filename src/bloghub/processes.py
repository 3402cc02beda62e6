"""Child processes bloghub starts (the projectors beside `bloghub run`'s API workers)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

PR_SET_PDEATHSIG = 1


def ending_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """For ``Popen(preexec_fn=...)``: on Linux the child is sent ``sig`` when the process
    that started it ends, however it ends. A parent killed outright runs no ``finally``
    that would stop its children, and a child left behind would go on working for nobody
    (a projector consuming, a replay builder writing a generation nobody follows)."""

    def set_parent_death_signal() -> None:
        if sys.platform != "linux":
            return
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return set_parent_death_signal


def stop_process(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM, so it drains; SIGKILL if it has not ended within ``grace_s``."""
    stop_processes([process], grace_s=grace_s)


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], *, grace_s: float) -> None:
    """SIGTERM to every one at once, so they drain side by side; SIGKILL to any that has
    not ended within ``grace_s`` of that."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
