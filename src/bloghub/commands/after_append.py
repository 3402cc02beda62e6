"""Steps that follow an append: confirming or freeing reserved keys, remembering the
caller's position, storing an idempotent answer.

Once the log has a write, the answer must say so. A step that fails here (PostgreSQL or
Redis unwell for a moment) must not turn the answer into an error, so each step runs as a
task retried with back-off and logged if it gives up. The request waits for it a short
while, so in the usual case it is done before the answer leaves (a login just after a
signup finds its key confirmed; a read finds the caller's position), and answers anyway
when it is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

Step = Callable[[], Awaitable[None]]


@dataclass
class AfterAppend:
    tries: int = 8
    wait_s: float = 1.0
    first_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    _running: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, what: str, step: Step, **context: object) -> None:
        """Run ``step`` off the request's fate: wait for it at most ``wait_s``; never raise."""
        task = self.start(what, step, **context)
        await asyncio.wait({task}, timeout=self.wait_s)

    def start(self, what: str, step: Step, **context: object) -> asyncio.Task[None]:
        """Run ``step`` in the background, retried, whatever becomes of the caller."""
        task = asyncio.create_task(self._retried(what, step, context))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def drain(self, timeout_s: float) -> None:
        """Give running steps a last chance to finish (on shutdown)."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout_s)

    async def _retried(self, what: str, step: Step, context: dict[str, object]) -> None:
        delay = self.first_backoff_s
        for attempt in range(1, self.tries + 1):
            try:
                await step()
                return
            # Any failure: the write is in the log whatever this step does, and the step is
            # retried or given up, never raised into the caller's answer.
            except Exception as exc:
                if attempt == self.tries:
                    log.error(
                        "after_append.gave_up", step=what, tries=attempt, error=repr(exc), **context
                    )
                    return
                log.warning(
                    "after_append.retrying", step=what, attempt=attempt, error=repr(exc), **context
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
