"""Readable (console) log lines carry no control characters a client sent: a request path
with an escape sequence must not clear or recolour the terminal of whoever reads the log."""

from __future__ import annotations

import io
import logging
import sys
import time

import orjson
import pytest
import structlog

from bloghub.logs import Seldom, brief_library_warnings, configure_logging, escape_controls
from bloghub.settings import Mode, Settings


def rendered(**event: object) -> str:
    renderer = structlog.dev.ConsoleRenderer(colors=False)
    line = renderer(None, "info", escape_controls(None, "info", dict(event)))
    assert isinstance(line, str)
    return line


def test_a_paths_control_characters_are_escaped() -> None:
    line = rendered(event="http.request", path="/v1/comments/x\x1b[2J\x1b[31mRED\x00\x08\x9b/r")
    assert not [ch for ch in line if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0]
    assert "\\x1b[2J\\x1b[31mRED\\x00\\x08\\x9b" in line


def test_text_without_controls_is_written_as_it_is() -> None:
    line = rendered(event="comment.posted", title="数据库迁移—“quoted”-café")
    assert "title=数据库迁移—“quoted”-café" in line


def test_a_librarys_warning_says_its_error_without_the_traceback() -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        info = (type(exc), exc, exc.__traceback__)
    event = {"event": "GET http://127.0.0.1:9/ [status:N/A]", "exc_info": info}
    warned = brief_library_warnings(None, "warning", dict(event))
    assert "exc_info" not in warned
    assert warned["error"] == "ConnectionRefusedError(111, 'Connection refused')"
    failed = brief_library_warnings(None, "error", dict(event))
    assert failed["exc_info"] == info, "an error keeps its traceback"


def test_a_library_saying_one_thing_over_and_over_is_said_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the broker down a process logged some 330 aiokafka lines a second, the same
    few messages: each is now said once per interval, the next with ``left_out``."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    kept = root.handlers[:], root.level
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    try:
        configure_logging(Settings(mode=Mode.TEST, log_format="json"))
        library = logging.getLogger("aiokafka")
        for _ in range(300):
            library.error("Unable connect to node with id %s: %s", 1, "Connection refused")
        library.error("Unable to update metadata from %s", [1])  # another message: said
        clock[0] += 10.5
        library.error("Unable connect to node with id %s: %s", 1, "Connection refused")
    finally:
        root.handlers[:], level = kept
        root.setLevel(level)
        structlog.reset_defaults()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line.get("left_out")) for line in lines] == [
        ("Unable connect to node with id 1: Connection refused", None),
        ("Unable to update metadata from [1]", None),
        ("Unable connect to node with id 1: Connection refused", 299),
    ]
    assert all(line["logger"] == "aiokafka" for line in lines)


def test_keys_that_never_repeat_do_not_grow_the_table_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    seldom = Seldom(10.0, max_keys=100)
    for i in range(1000):
        assert seldom.due(f"took {i} ms") == 0  # each one new: said
        clock[0] += 1.0
    assert len(seldom._next) <= 100
    assert seldom.due("took 999 ms") is None  # still within its interval: left out
