"""Public comment numbers: JavaScript-safe integers (RealWorld's comment ids), unique by
the write-side index and carried in ``comment.posted``, so a replay keeps them.

A number is the posting time in milliseconds times 4096 plus a random part: it stays
below 2^53 for millennia, grows with time, and two comments of one millisecond collide
only when their random parts do, which the index refuses (another is drawn)."""

from __future__ import annotations

import secrets
import time

from bloghub.commands.context import CommandDeps, Key
from bloghub.errors import Conflict

COMMENT_NUMBER = "comment_number"
_SPREAD = 4096
_TRIES = 4


def draw_number(now_ms: int | None = None) -> int:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return ms * _SPREAD + secrets.randbelow(_SPREAD)


async def reserve_number(deps: CommandDeps, comment_id: str) -> tuple[int, Key]:
    for _ in range(_TRIES):
        number = draw_number()
        key = (COMMENT_NUMBER, str(number), comment_id)
        try:
            await deps.reservations.reserve(*key)
        except Conflict:
            continue
        return number, key
    raise Conflict("no free comment number; try again")
