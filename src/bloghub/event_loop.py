"""The event loop bloghub's own processes run on: uvloop, which uvicorn already picks for
the API workers, wherever it is installed (it comes with ``uvicorn[standard]`` on Linux);
asyncio's own loop elsewhere. A projector's time between its batches is the loop's (Kafka
fetches, PostgreSQL and Redis replies, task wake-ups), so the projector processes, the
ranking job and the operators' tools run on the same loop as the API rather than the
slower default."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not on Linux
        return asyncio.run(main)
    return uvloop.run(main)
