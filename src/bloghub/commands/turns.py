"""A turn: a key of the write-side index held while a command decides and records, so the
commands that must not interleave (one account's key changes; a comment's delete and the
replies under it) run one after another across every API process.

Each request claims the turn under a fresh holder (``reserve`` lets an owner take its own
pending key again). A holder that crashed leaves it pending, and the sweeper frees it like
any stale pending key: it deletes by age and status, whatever the kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bloghub.commands.context import CommandDeps
from bloghub.errors import Conflict
from bloghub.ids import new_id_str

_POLL_S = 0.05


async def take_turn(
    deps: CommandDeps, kind: str, key: str, holder: str, *, wait_s: float, busy: str
) -> None:
    """Claim ``kind``/``key`` for ``holder``, waiting up to ``wait_s`` for another holder to
    end its turn; then ``Conflict`` (409) saying ``busy``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        try:
            await deps.reservations.reserve(kind, key, holder)
            return
        except Conflict:
            if loop.time() >= deadline:
                raise Conflict(busy) from None
        await asyncio.sleep(_POLL_S)


@asynccontextmanager
async def turn(
    deps: CommandDeps, kind: str, key: str, *, wait_s: float, busy: str
) -> AsyncIterator[None]:
    """``kind``/``key`` held for the block under a fresh holder (``take_turn``); ended off
    the request path, after the steps the command left (``CommandDeps.after``)."""
    holder = new_id_str()
    await take_turn(deps, kind, key, holder, wait_s=wait_s, busy=busy)

    async def end() -> None:
        await deps.reservations.release(kind, key, holder)

    try:
        yield
    finally:
        await deps.after(f"end_{kind}", end, key=key)
