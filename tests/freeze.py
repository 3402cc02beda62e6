"""A projector process frozen in the middle of a batch, as a long pause (a stalled VM, a
swapped-out process) would leave it: its transaction open in PostgreSQL, its Kafka session
lapsing, and its batch still to be committed when it wakes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

from bloghub.settings import Settings
from tests.conftest import pg


def _tcp_ports(pid: int) -> list[int]:
    """The local ports of ``pid``'s TCP sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# The server has run every statement the process sent and waits for the next one inside a
# transaction that holds a transaction id: the batch has locked its checkpoint rows (the
# first thing it does) and committed nothing.
_HOLDS_A_BATCH = """
SELECT count(*) FROM pg_stat_activity
WHERE client_port = any($1::int[]) AND state = 'idle in transaction'
  AND backend_xid IS NOT NULL
"""

_SEEN = "SELECT state, backend_xid FROM pg_stat_activity WHERE client_port = any($1::int[])"


@contextlib.asynccontextmanager
async def frozen_mid_batch(
    proc: subprocess.Popen[bytes], settings: Settings, *, tries: int = 200
) -> AsyncIterator[None]:
    """``proc`` stopped (SIGSTOP) while it holds a batch's transaction open in the
    settings' database; it goes on (SIGCONT) when the block ends."""
    async with pg(settings) as conn:
        for _ in range(tries):
            proc.send_signal(signal.SIGSTOP)
            # A statement the process sent just before it stopped finishes meanwhile.
            await asyncio.sleep(0.05)
            if await conn.fetchval(_HOLDS_A_BATCH, _tcp_ports(proc.pid)):
                break
            proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.02)
        else:
            seen = await conn.fetch(_SEEN, _tcp_ports(proc.pid))
            raise AssertionError(f"the process was never caught inside a batch: {seen}")
    try:
        yield
    finally:
        proc.send_signal(signal.SIGCONT)
