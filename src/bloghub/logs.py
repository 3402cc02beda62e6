"""Structured logs (structlog): JSON in production, readable in development."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import posixpath
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog

from bloghub.errors import Unavailable
from bloghub.settings import Mode, Settings

AccessLog = Callable[[str, str, int, float, str], None]  # method, path, status, ms, request id


def json_logs(settings: Settings) -> bool:
    return settings.log_format == "json" or (
        settings.log_format == "auto" and settings.mode is Mode.PRODUCTION
    )


def configure_logging(settings: Settings) -> None:
    level = logging.INFO
    json = json_logs(settings)
    # orjson renders a line in a few microseconds, several times faster than the standard
    # library: the API logs a line per request.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_text)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    # JSON escapes control characters; the console would write them out as they are.
    rendering = [renderer] if json else [escape_controls, renderer]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *_STAMPED, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # The libraries' own records (opensearch's retries, aiokafka's connection errors,
    # asyncio's, uvicorn's) in the same format, a traceback inside its line: with JSON
    # logs, every line of stderr is one JSON object.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(allow=["left_out"]),
                *([] if json else [brief_library_warnings]),
                *_STAMPED,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    handler.addFilter(LibraryRepeats())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


class LibraryRepeats(logging.Filter):
    """A library saying one thing over and over is said once per interval: with the broker
    down, aiokafka's consumers and producers each retry several times a second, and a
    process logged some 330 lines a second of the same few messages, burying everything
    else. Each message (its logger and template, before its arguments) is let through as
    ``Seldom`` lets bloghub's own lines, the next one carrying ``left_out``."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self._seldom = Seldom(every_s)

    def filter(self, record: logging.LogRecord) -> bool:
        left_out = self._seldom.due(f"{record.name}\0{record.msg}")
        if left_out is None:
            return False
        if left_out:
            record.left_out = left_out
        return True


_STAMPED: list[structlog.typing.Processor] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
]


# C0 controls but tab and newline (the console renderer quotes a value with a newline),
# DEL and C1: written to a terminal they move the cursor, clear the screen or recolour it,
# and a request's path can carry any of them.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def escape_controls(
    logger: Any, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Every text value of a readable log line with its control characters escaped
    (``\\x1b``), so that what a client sent cannot drive the terminal that shows it."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = value.translate(_CONTROLS)
    return event


def brief_library_warnings(
    logger: Any, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A library's warning on a readable log says its error in one line, without the
    traceback: a client retrying an unreachable service (opensearch-py logs each retry
    with one) would bury the line that explains a command's stop under a hundred. Errors
    keep theirs, and JSON logs keep every traceback, inside their one line."""
    if method == "warning" and "exc_info" in event:
        info = event.pop("exc_info")
        failure = info[1] if isinstance(info, tuple) else info
        if isinstance(failure, BaseException):
            event["error"] = repr(failure)
    return event


def _orjson_text(value: Any, **kw: Any) -> str:
    return orjson.dumps(value, **kw).decode()


def access_log(settings: Settings) -> AccessLog | None:
    """With JSON logs, the per-request line written straight to stderr as the configured
    processors would render it (the same keys and timestamp form), without their generic
    machinery: a few microseconds instead of tens. ``None`` with readable logs: the line
    then goes through structlog like any other."""
    if not json_logs(settings):
        return None
    return _AccessLines(sys.stderr)


ACCESS_FLUSH_S = 0.05  # how long a line may wait for others to share its write
ACCESS_FLUSH_BYTES = 64 * 1024


class _AccessLines:
    """Request lines, gathered and written together: one ``write`` (a system call) per line
    was a tenth of a hot read's cost. A line waits at most ``ACCESS_FLUSH_S``; an error's
    line (5xx) goes out at once with those before it, and so does a line written outside
    an event loop. Lines still waiting when the process exits are written then."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._stamp = _UtcStamp()
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        atexit.register(self.flush)

    def __call__(self, method: str, path: str, status: int, ms: float, request_id: str) -> None:
        line = {
            "method": method,
            "path": path,
            "status": status,
            "ms": ms,
            "event": "http.request",
            "request_id": request_id,
            "level": "info",
            "timestamp": self._stamp(),
        }
        text = orjson.dumps(line).decode() + "\n"
        self._lines.append(text)
        self._size += len(text)
        if status >= 500 or self._size >= ACCESS_FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(ACCESS_FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            text, self._lines, self._size = "".join(self._lines), [], 0
            # At exit the stream may be closed already (a test runner's capture, say).
            with contextlib.suppress(ValueError, OSError):
                self._stream.write(text)
                self._stream.flush()


class _UtcStamp:
    """``2026-01-02T03:04:05.678901Z``, formatting the date and time once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"


class Seldom:
    """Lines that would repeat for every request or pass while a service is down: the
    first is logged, then at most one per ``every_s`` for the same key, saying how many
    were left out since (``left_out``); what the outage is, is said, not flooded."""

    def __init__(self, every_s: float = 10.0, *, max_keys: int = 4096) -> None:
        self._every_s = every_s
        self._max_keys = max_keys
        self._next: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """None if this line is to be left out; else how many were left out before it."""
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._left_out[key] = self._left_out.get(key, 0) + 1
            return None
        if len(self._next) >= self._max_keys:
            # Keys that vary without end (a library's message formatted before it is
            # logged) would grow the table for ever: the lapsed ones go.
            self._next = {k: t for k, t in self._next.items() if t > now}
            self._left_out = {k: n for k, n in self._left_out.items() if k in self._next}
            if len(self._next) >= self._max_keys:
                self._next.clear()
                self._left_out.clear()
        self._next[key] = now + self._every_s
        return self._left_out.pop(key, 0)


# One per process: the keys are the lines' event names.
SELDOM = Seldom()


# A RealWorld profile's path, however it is spelled (a 404 is logged as sent).
_PROFILE = re.compile(r"^(/+api/+profiles/+)[^/]*", re.IGNORECASE)


def logged_path(path: str) -> str:
    """The path as the request log keeps it: a RealWorld profile's path names its person
    (a username is a nickname, personal data, sealed in the event log and kept nowhere in
    clear), so that segment is logged as ``<username>``, in any spelling of the route (one
    with dot segments is logged as resolved)."""
    if "profiles" not in path.lower():
        return path
    if _PROFILE.match(path) is None:
        path = posixpath.normpath(path)
    return _PROFILE.sub(r"\1<username>", path, count=1)


def store_unreachable(path: str, exc: BaseException) -> None:
    """A request answered 503 because a store is out of reach (whichever layer saw it):
    said once per interval while the outage lasts, with the driver's error behind it and
    how many were left out. Other 503s (a read model catching up, the schema behind, a
    write the log could not confirm) are not an outage and are not said here."""
    if not (type(exc) is Unavailable or type(exc.__cause__) is Unavailable):
        return  # a store's driver error is translated to Unavailable itself (adapters/)
    if (left_out := SELDOM.due("api.store_unreachable")) is not None:
        cause = exc.__cause__ or exc.__context__ or exc
        structlog.get_logger("bloghub.api").warning(
            "api.store_unreachable",
            path=logged_path(path),
            error=str(exc),
            cause=type(cause).__name__,
            left_out=left_out,
        )
