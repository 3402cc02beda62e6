"""When a test fails, what every task of the suite's event loop was waiting on, in the
failure's report.

The API, the projectors and the test share one event loop (``tests/conftest.py``), so a
request that hangs until the client's timeout leaves no traceback of its own; its task is
still pending when the test fails. Each pending task is shown as one line, the chain of
coroutines it is suspended in, innermost last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from types import CoroutineType, FrameType
from typing import Any

import pytest

MOST_TASKS = 400
_loop: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(scope="session", autouse=True)
async def _suite_loop() -> AsyncIterator[None]:
    _loop.append(asyncio.get_running_loop())
    try:
        yield
    finally:
        _loop.clear()


def _frame_of(awaitable: Any) -> FrameType | None:
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(awaitable, name, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _next_of(awaitable: Any) -> Any:
    for name in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(awaitable, name, None)
        if inner is not None:
            return inner
    return None


def suspended_in(task: asyncio.Task[Any]) -> str:
    """The coroutines ``task`` is suspended in, outermost first: ``name:line`` each."""
    where: list[str] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(where) < 40:
        frame = _frame_of(awaitable)
        if frame is not None:
            code = frame.f_code
            file = code.co_filename.rsplit("/", 1)[-1]
            where.append(f"{code.co_qualname} ({file}:{frame.f_lineno})")
        elif not isinstance(awaitable, CoroutineType):
            where.append(type(awaitable).__qualname__)  # a future, a C-implemented awaitable
        awaitable = _next_of(awaitable)
    return " > ".join(where) or repr(task)


def pending_tasks(loop: asyncio.AbstractEventLoop) -> str:
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    lines = [f"{t.get_name()}: {suspended_in(t)}" for t in tasks[:MOST_TASKS]]
    if len(tasks) > MOST_TASKS:
        lines.append(f"... and {len(tasks) - MOST_TASKS} more")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed and _loop and not _loop[0].is_closed():
        pending = pending_tasks(_loop[0])
        if pending:
            report.sections.append(("event loop tasks at the failure", pending))
    return report
