"""Child processes bloghub starts (the projectors beside `bloghub run`'s API workers)."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM, so it drains; SIGKILL if it has not ended within ``grace_s``."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
